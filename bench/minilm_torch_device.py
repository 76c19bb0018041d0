"""PyTorch eager on a GPU, the yardstick of bench/minilm --device cuda (benchmarks.md section 2,
bar CUDA): the model of ../shared/reference/minilm_torch.py, the same optimizer and batch, each
step timed between two synchronizations.
Usage: python3 minilm_torch_device.py [--reference PATH] [--device cuda] [--foreach] plus
minilm_torch.py's flags (--d --layers --heads --seq --batch --steps --dtype)."""
import argparse, importlib.util, os, statistics, time
import torch
import torch.nn.functional as F

here = os.path.dirname(os.path.abspath(__file__))
ap = argparse.ArgumentParser()
ap.add_argument("--reference", default=os.path.join(here, "..", "..", "shared", "reference", "minilm_torch.py"))
ap.add_argument("--device", default="cuda")
ap.add_argument("--foreach", action="store_true", help="AdamW's multi-tensor path (PyTorch's CUDA default)")
ap.add_argument("--d", type=int, default=256); ap.add_argument("--layers", type=int, default=4)
ap.add_argument("--heads", type=int, default=4); ap.add_argument("--seq", type=int, default=128)
ap.add_argument("--batch", type=int, default=16); ap.add_argument("--steps", type=int, default=10)
ap.add_argument("--dtype", default="float32")
a = ap.parse_args()
spec = importlib.util.spec_from_file_location("minilm_torch", a.reference)
ref = importlib.util.module_from_spec(spec); spec.loader.exec_module(ref)


class DeviceMiniLM(ref.MiniLM):
    # The reference builds its positions on the CPU; here they live where the model does.
    def forward(s, idx):
        x = (s.tok_embeddings(idx) + s.pos_embeddings(torch.arange(idx.shape[1], device=idx.device)))
        x = x.to(s.head.weight.dtype)
        for b in s.blocks: x = b(x, s.mask)
        return s.head(s.norm(x))


dev = torch.device(a.device)
torch.manual_seed(0)
m = DeviceMiniLM(256, a.d, a.layers, a.heads, a.seq)
if a.dtype == "bfloat16": m = m.to(torch.bfloat16); m.tok_embeddings.float(); m.pos_embeddings.float()
m = m.to(dev)
decay = [p for n, p in m.named_parameters() if p.ndim > 1 and "tok_embeddings" not in n]
no_decay = [p for n, p in m.named_parameters() if not (p.ndim > 1 and "tok_embeddings" not in n)]
opt = torch.optim.AdamW([{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": 1e-2}],
                        lr=1e-3, foreach=a.foreach)
data = torch.randint(0, 256, (a.batch, a.seq + 1)).to(dev)
sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
ts = []
for i in range(a.steps + 2):
    sync(); t = time.perf_counter()
    logits = m(data[:, :-1])
    loss = F.cross_entropy(logits.float().reshape(-1, 256), data[:, 1:].reshape(-1))
    loss.backward(); opt.step(); opt.zero_grad()
    sync()
    if i >= 2: ts.append(time.perf_counter() - t)
med = statistics.median(ts)
n = sum(p.numel() for p in m.parameters())
print(f"params={n} dtype={a.dtype} device={a.device} foreach={a.foreach} median step={med*1e3:.3f} ms "
      f"tokens/s={a.batch*a.seq/med:.0f} loss={loss.item():.3f}")
