#include "history.hpp"

#include <fstream>
#include <stdexcept>
#include <string>

#include <unistd.h>

namespace minilm {

nlohmann::json History::to_json() const {
  nlohmann::json j = {{"train", nlohmann::json::array()}, {"val", nlohmann::json::array()}};
  for (const TrainPoint& p : train)
    j["train"].push_back({{"step", p.step}, {"loss", p.loss}, {"lr", p.lr}});
  for (const ValPoint& p : val) j["val"].push_back({{"step", p.step}, {"loss", p.loss}});
  return j;
}

History History::from_json(const nlohmann::json& j) {
  History h;
  for (const auto& p : j.at("train"))
    h.train.push_back(
        {p.at("step").get<int64_t>(), p.at("loss").get<double>(), p.at("lr").get<double>()});
  for (const auto& p : j.at("val"))
    h.val.push_back({p.at("step").get<int64_t>(), p.at("loss").get<double>()});
  return h;
}

void write_json_atomically(const std::filesystem::path& path, const nlohmann::json& j) {
  std::filesystem::path tmp = path;
  tmp += ".tmp" + std::to_string(getpid());
  // Doubles print in full (round-trip) precision, which the resume tests compare; bytes that
  // are not UTF-8 (a sample from a barely trained model) become U+FFFD.
  const std::string text = j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
  {
    std::ofstream out(tmp);
    out << text << "\n";
    if (!out) throw std::runtime_error("cannot write " + path.string());
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    throw std::runtime_error("cannot write " + path.string() + ": " + ec.message());
  }
}

}  // namespace minilm
