"""Interoperability of the minilm sample with the PyTorch reference (shared/reference/minilm_torch.py).

usage: test_torch_interop.py MINILM_EXE REFERENCE_DIR WORK_DIR

1. A safetensors file written from the PyTorch model (float32 and bfloat16, architecture in
   __metadata__) is accepted by `minilm --resume`, and `--score FILE` gives PyTorch's mean loss
   on FILE's windows (within 1e-4 in float32).
2. A checkpoint written by the sample loads into the PyTorch model by name (strict) and gives
   the same loss on the same windows.

The module doubles as the tool that writes such files and computes PyTorch's loss:
  test_torch_interop.py --export OUT.safetensors [--dtype bfloat16] [--d 32 --layers 2 --heads 2 --seq 32]
  test_torch_interop.py --score MODEL.safetensors FILE
  (both take --reference DIR, default ../../../shared/reference from this file)
Exit status: 0 pass, 1 fail, 77 skipped (no torch or no reference model).
"""
import json, os, struct, subprocess, sys

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    print("SKIP: python3-torch is not installed (apt-get install python3-torch libopenblas0-openmp)")
    sys.exit(77)

DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16, "I64": torch.int64}
NAMES = {v: k for k, v in DTYPES.items()}


def save_safetensors(path, tensors, metadata):
    """The safetensors layout: u64 little-endian header length, JSON header, raw data."""
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        raw = (t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy().tobytes()
        header[name] = {"dtype": NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def load_safetensors(path):
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    metadata = header.pop("__metadata__", {})
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        raw = bytearray(data[8 + n + begin:8 + n + end])
        dtype = DTYPES[info["dtype"]]
        t = torch.frombuffer(raw, dtype=torch.int16).view(torch.bfloat16) if dtype == torch.bfloat16 \
            else torch.frombuffer(raw, dtype=dtype)
        tensors[name] = t.reshape(info["shape"]).clone()
    return tensors, metadata


def import_reference(reference_dir):
    path = os.path.join(reference_dir, "minilm_torch.py")
    if not os.path.exists(path):
        print(f"SKIP: the PyTorch reference {path} is missing")
        sys.exit(77)
    sys.path.insert(0, reference_dir)
    import minilm_torch
    return minilm_torch


def to_bfloat16(model):
    """The reference's bfloat16 setup, which matches to_low_precision: embeddings stay float32."""
    model = model.to(torch.bfloat16)
    model.tok_embeddings.float()
    model.pos_embeddings.float()
    return model


def model_from_file(ref, path):
    tensors, meta = load_safetensors(path)
    model = ref.MiniLM(int(meta["vocab"]), int(meta["d_model"]), int(meta["layers"]), int(meta["heads"]),
                       int(meta["max_seq"]))
    if tensors["head.weight"].dtype == torch.bfloat16:
        model = to_bfloat16(model)
    model.load_state_dict(tensors, strict=True)  # by name: every name must match
    return model, int(meta["max_seq"])


@torch.no_grad()
def mean_loss(model, max_seq, data):
    """Mean cross-entropy over windows of max_seq + 1 bytes at offsets 0, max_seq, ..., as --score."""
    n = (len(data) - 1) // max_seq
    windows = torch.tensor([list(data[i * max_seq:i * max_seq + max_seq + 1]) for i in range(n)], dtype=torch.int64)
    logits = model(windows[:, :-1])
    return F.cross_entropy(logits.float().reshape(-1, 256), windows[:, 1:].reshape(-1)).item()


def export(ref, path, dtype="float32", d=32, layers=2, heads=2, seq=32, seed=0):
    torch.manual_seed(seed)
    model = ref.MiniLM(256, d, layers, heads, seq)
    with torch.no_grad():  # move every parameter off its initial value (LayerNorm ones, zeros)
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    if dtype == "bfloat16":
        model = to_bfloat16(model)
    meta = {"vocab": "256", "d_model": str(d), "layers": str(layers), "heads": str(heads), "max_seq": str(seq),
            "rope": "0"}
    save_safetensors(path, model.state_dict(), meta)
    return model


def minilm(exe, *args):
    r = subprocess.run([exe, *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError(f"minilm {' '.join(args)} exited {r.returncode}: {r.stderr.strip()}")
    return r.stdout


def sample_score(exe, model_path, text_path, work):
    out = os.path.join(work, "score.json")
    minilm(exe, "--resume", model_path, "--score", text_path, "--metrics-json", out)
    return json.load(open(out))["score"]


def check(what, ours, theirs, tolerance):
    ok = abs(ours - theirs) <= tolerance
    print(f"{'ok  ' if ok else 'FAIL'} {what}: minilm {ours:.6f}, PyTorch {theirs:.6f} (tolerance {tolerance})")
    return ok


def run_tests(exe, reference_dir, work):
    ref = import_reference(reference_dir)
    torch.set_num_threads(2)
    os.makedirs(work, exist_ok=True)
    text_path = os.path.join(reference_dir, "minilm_torch.py")  # any text will do
    text = open(text_path, "rb").read()
    ok = True

    # 1. PyTorch -> sample.
    # bfloat16 rounds each op's output, so the two frameworks agree less closely.
    for dtype, tolerance in (("float32", 1e-4), ("bfloat16", 2e-3)):
        path = os.path.join(work, f"torch_{dtype}.safetensors")
        model = export(ref, path, dtype)
        ok &= check(f"--score of a {dtype} file from PyTorch", sample_score(exe, path, text_path, work),
                    mean_loss(model, 32, text), tolerance)
        # --resume accepts it for training too: a fresh optimizer from these weights.
        minilm(exe, "--resume", path, "--steps", "2", "--batch", "4", "--data", text_path,
               "--checkpoint", os.path.join(work, f"continued_{dtype}.safetensors"))

    # 2. Sample -> PyTorch.
    for dtype, tolerance in (("float32", 1e-4), ("bfloat16", 2e-3)):
        ck = os.path.join(work, f"sample_{dtype}.safetensors")
        minilm(exe, "--steps", "30", "--lr", "1e-2", "--batch", "4", "--seq", "32", "--d-model", "32", "--layers", "2", "--heads", "2",
               "--dtype", dtype, "--checkpoint", ck)
        model, max_seq = model_from_file(ref, ck)
        ok &= check(f"{dtype} checkpoint from minilm loaded into PyTorch", sample_score(exe, ck, text_path, work),
                    mean_loss(model, max_seq, text), tolerance)
    return ok


def main(argv):
    if argv[:1] not in (["--export"], ["--score"]):
        if len(argv) != 3:
            print(__doc__)
            return 1
        try:
            return 0 if run_tests(*argv) else 1
        except AssertionError as e:
            print(f"FAIL {e}")
            return 1
    import argparse
    ap = argparse.ArgumentParser(usage=__doc__)
    ap.add_argument("--export", metavar="OUT")
    ap.add_argument("--score", nargs=2, metavar=("MODEL", "FILE"))
    ap.add_argument("--reference", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                        "../../../shared/reference"))
    ap.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    for name in ("d", "layers", "heads", "seq"):
        ap.add_argument(f"--{name}", type=int, default=32 if name in ("d", "seq") else 2)
    a = ap.parse_args(argv)
    ref = import_reference(a.reference)
    if a.export:
        export(ref, a.export, a.dtype, a.d, a.layers, a.heads, a.seq)
    else:
        model, max_seq = model_from_file(ref, a.score[0])
        print(f"score: {mean_loss(model, max_seq, open(a.score[1], 'rb').read()):.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
