#include "corpus.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <stdexcept>
#include <utility>

namespace minilm {
namespace {

// splitmix64: the corpus has its own generator so that it depends on nothing but the seed.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  double uniform() {  // [0, 1)
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return double((z ^ (z >> 31)) >> 11) * 0x1.0p-53;
  }

 private:
  uint64_t state_;
};

struct Word {
  std::string singular;
  std::string plural;
};

}  // namespace

class GrammarBuilder {
 public:
  size_t slot(const std::string& name) {
    auto [it, inserted] = ids_.try_emplace(name, slots_.size());
    if (inserted) slots_.push_back({name, {}, {}});
    return it->second;
  }
  void add(size_t slot, std::string text, double weight, size_t next) {
    slots_[slot].alternatives.push_back({std::move(text), weight, next});
  }
  // `words` with Zipf weights (the i-th has weight 1/(i+1)), `total` weight in all.
  void add_zipf(size_t slot, const std::vector<std::string>& words, double total,
                const std::vector<std::pair<std::string, double>>& suffixes, size_t next) {
    double h = 0;
    for (size_t i = 0; i < words.size(); ++i) h += 1.0 / double(i + 1);
    for (size_t i = 0; i < words.size(); ++i)
      for (const auto& [suffix, w] : suffixes)
        add(slot, words[i] + suffix, total * w / (double(i + 1) * h), next);
  }
  Grammar build(size_t start) {
    Grammar g;
    for (Grammar::Slot& s : slots_) {
      double total = 0;
      for (const auto& a : s.alternatives) total += a.p;
      double c = 0;
      for (auto& a : s.alternatives) {
        a.p /= total;
        s.cumulative.push_back(c += a.p);
      }
      s.cumulative.back() = 1.0;
      // Prefix-freeness makes the text decodable, which the entropy rate relies on.
      std::vector<std::string> texts;
      for (const auto& a : s.alternatives) texts.push_back(a.text);
      std::sort(texts.begin(), texts.end());
      for (size_t i = 0; i + 1 < texts.size(); ++i)
        if (texts[i + 1].starts_with(texts[i]))
          throw std::logic_error("grammar slot " + s.name + ": '" + texts[i] +
                                 "' is a prefix of '" + texts[i + 1] + "'");
    }
    g.slots_ = std::move(slots_);
    g.start_ = start;
    return g;
  }

 private:
  std::vector<Grammar::Slot> slots_;
  std::map<std::string, size_t> ids_;
};

const Grammar& Grammar::english() {
  static const Grammar grammar = [] {
    const std::vector<Word> nouns = {
        {"cat", "cats"},         {"dog", "dogs"},     {"bird", "birds"},     {"fox", "foxes"},
        {"horse", "horses"},     {"mouse", "mice"},   {"child", "children"}, {"farmer", "farmers"},
        {"teacher", "teachers"}, {"king", "kings"},   {"queen", "queens"},   {"wolf", "wolves"},
        {"rabbit", "rabbits"},   {"baker", "bakers"}, {"sailor", "sailors"}, {"girl", "girls"},
        {"boy", "boys"},         {"owl", "owls"},     {"frog", "frogs"},     {"goat", "goats"}};
    const std::vector<Word> transitive = {
        {"sees", "see"},       {"chases", "chase"}, {"likes", "like"},    {"helps", "help"},
        {"follows", "follow"}, {"finds", "find"},   {"watches", "watch"}, {"meets", "meet"},
        {"hears", "hear"},     {"feeds", "feed"},   {"calls", "call"},    {"knows", "know"}};
    const std::vector<Word> intransitive = {
        {"sleeps", "sleep"}, {"runs", "run"},   {"sings", "sing"},   {"waits", "wait"},
        {"laughs", "laugh"}, {"swims", "swim"}, {"dances", "dance"}, {"hides", "hide"}};
    const std::vector<std::string> adjectives = {"big",  "small", "old",    "young",
                                                 "red",  "quiet", "happy",  "clever",
                                                 "lazy", "brave", "hungry", "tired"};
    const std::vector<std::string> adverbs = {"often", "never", "always", "sometimes"};
    auto forms = [](const std::vector<Word>& words, bool plural) {
      std::vector<std::string> out;
      for (const Word& w : words) out.push_back(plural ? w.plural : w.singular);
      return out;
    };

    GrammarBuilder b;
    const size_t start = b.slot("START"), clause = b.slot("CLAUSE"), object = b.slot("OBJECT");
    // A sentence goes on with a clause a third of the time, else ends (with a paragraph break
    // now and then). Endings attach to the word before them, which keeps slots prefix-free.
    const std::vector<std::pair<std::string, double>> endings = {
        {". ", 0.52}, {".\n", 0.15}, {", and ", 0.15}, {" because ", 0.1}, {", but ", 0.08}};
    auto add_ending_words = [&](size_t slot, const std::vector<std::string>& words, double total) {
      for (const auto& [ending, w] : endings) {
        const size_t next = ending.starts_with(".") ? start : clause;
        b.add_zipf(slot, words, total * w, {{ending, 1.0}}, next);
      }
    };

    // Subject noun phrases: the determiner fixes or leaves open the number, which the verb
    // must then agree with.
    for (int number = 0; number < 3; ++number) {  // 0 either, 1 singular, 2 plural
      const std::string suffix = number == 0 ? "_ANY" : number == 1 ? "_SG" : "_PL";
      const size_t np = b.slot("SUBJ" + suffix), noun = b.slot("SUBJ_NOUN" + suffix);
      b.add_zipf(np, adjectives, 0.3, {{" ", 1.0}}, noun);
      for (size_t target : {np, noun}) {
        const double total = target == np ? 0.7 : 1.0;
        if (number != 2)
          b.add_zipf(target, forms(nouns, false), number == 0 ? total / 2 : total, {{" ", 1.0}},
                     b.slot("VERB_SG"));
        if (number != 1)
          b.add_zipf(target, forms(nouns, true), number == 0 ? total / 2 : total, {{" ", 1.0}},
                     b.slot("VERB_PL"));
      }
      const size_t onp = b.slot("OBJ" + suffix), onoun = b.slot("OBJ_NOUN" + suffix);
      b.add_zipf(onp, adjectives, 0.25, {{" ", 1.0}}, onoun);
      for (size_t target : {onp, onoun}) {
        const double total = target == onp ? 0.75 : 1.0;
        if (number != 2)
          add_ending_words(target, forms(nouns, false), number == 0 ? total / 2 : total);
        if (number != 1)
          add_ending_words(target, forms(nouns, true), number == 0 ? total / 2 : total);
      }
    }
    const std::vector<std::tuple<std::string, double, std::string>> determiners = {
        {"the ", 0.4, "_ANY"},   {"a ", 0.2, "_SG"},   {"some ", 0.12, "_PL"},
        {"every ", 0.08, "_SG"}, {"my ", 0.1, "_ANY"}, {"two ", 0.05, "_PL"},
        {"no ", 0.05, "_ANY"}};
    for (const auto& [det, w, number] : determiners) {
      std::string capital = det;
      capital[0] = char(capital[0] - 'a' + 'A');
      b.add(start, capital, w, b.slot("SUBJ" + number));
      b.add(clause, det, w, b.slot("SUBJ" + number));
      if (det != "every " && det != "no ") b.add(object, det, w, b.slot("OBJ" + number));
    }
    // Verb phrases, each in singular and plural: an optional adverb, then a transitive verb
    // and an object, an intransitive verb that ends the clause, or a copula and an adjective.
    for (bool plural : {false, true}) {
      const std::string n = plural ? "_PL" : "_SG";
      const size_t verb = b.slot("VERB" + n), bare = b.slot("BARE_VERB" + n);
      const size_t predicate = b.slot("PREDICATE");
      b.add_zipf(verb, adverbs, 0.15, {{" ", 1.0}}, bare);
      for (size_t target : {verb, bare}) {
        const double total = target == verb ? 0.85 : 1.0;
        b.add_zipf(target, forms(transitive, plural), total * 0.6, {{" ", 1.0}}, object);
        add_ending_words(target, forms(intransitive, plural), total * 0.25);
        b.add(target, plural ? "are " : "is ", total * 0.15, predicate);
      }
      if (!plural) add_ending_words(predicate, adjectives, 1.0);
    }
    return b.build(start);
  }();
  return grammar;
}

double Grammar::entropy_rate() const {
  const size_t n = slots_.size();
  std::vector<double> pi(n, 1.0 / double(n)), next(n);
  // Power iteration on the lazy chain (I + P) / 2: same stationary distribution, never periodic.
  for (int iter = 0; iter < 100000; ++iter) {
    for (size_t i = 0; i < n; ++i) next[i] = pi[i] / 2;
    for (size_t s = 0; s < n; ++s)
      for (const Alternative& a : slots_[s].alternatives) next[a.next] += pi[s] * a.p / 2;
    double change = 0;
    for (size_t i = 0; i < n; ++i) change += std::abs(next[i] - pi[i]);
    pi.swap(next);
    if (change < 1e-15) break;
  }
  double entropy = 0, length = 0;
  for (size_t s = 0; s < n; ++s) {
    for (const Alternative& a : slots_[s].alternatives) {
      entropy -= pi[s] * a.p * std::log(a.p);
      length += pi[s] * a.p * double(a.text.size());
    }
  }
  return entropy / length;
}

Grammar::Text Grammar::generate(size_t bytes, uint64_t seed) const {
  SplitMix64 rng(seed);
  Text out;
  out.bytes.reserve(bytes + 64);
  double nll = 0;
  size_t slot = start_;
  while (out.bytes.size() < bytes) {
    const Slot& s = slots_[slot];
    const size_t i =
        size_t(std::upper_bound(s.cumulative.begin(), s.cumulative.end() - 1, rng.uniform()) -
               s.cumulative.begin());
    const Alternative& a = s.alternatives[i];
    out.bytes += a.text;
    nll -= std::log(a.p);
    slot = a.next;
  }
  out.nll_per_byte = nll / double(out.bytes.size());
  out.bytes.resize(bytes);
  return out;
}

}  // namespace minilm
