#include "wire.hpp"

namespace segstream {

long Mask::area() const {
  long n = 0;
  for (auto p : pixels) n += p;
  return n;
}

std::array<int, 4> Mask::bounds() const {
  int x1 = width, y1 = height, x2 = 0, y2 = 0;
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      if (pixels[static_cast<size_t>(y) * width + x]) {
        x1 = std::min(x1, x);
        y1 = std::min(y1, y);
        x2 = std::max(x2, x + 1);
        y2 = std::max(y2, y + 1);
      }
    }
  }
  if (x2 == 0) return {0, 0, 0, 0};
  return {x1, y1, x2, y2};
}

std::vector<std::uint32_t> rle_counts(const std::string& s) {
  // Each count is a signed number in 5-bit groups, least significant first,
  // each written as the character 48 + group; bit 0x20 says another group
  // follows, and bit 0x10 of the last group is the sign (two's complement).
  // From the fourth count on, the number is the difference to the count two
  // places earlier.
  std::vector<std::uint32_t> counts;
  size_t p = 0;
  while (p < s.size()) {
    std::int64_t x = 0;
    int k = 0;
    bool more = true;
    while (more) {
      if (p >= s.size() || k > 6) throw WireError("mask counts: truncated or overlong number");
      int c = static_cast<unsigned char>(s[p]) - 48;
      if (c < 0 || c > 63) throw WireError("mask counts: character out of range");
      x |= static_cast<std::int64_t>(c & 0x1f) << (5 * k);
      more = (c & 0x20) != 0;
      ++p;
      ++k;
      if (!more && (c & 0x10)) x |= -(static_cast<std::int64_t>(1) << (5 * k));
    }
    if (counts.size() > 2) x += counts[counts.size() - 2];
    if (x < 0 || x > 0xffffffffLL) throw WireError("mask counts: negative run");
    counts.push_back(static_cast<std::uint32_t>(x));
  }
  return counts;
}

Mask decode_rle(const nlohmann::json& rle) {
  if (!rle.is_object() || !rle.contains("size") || !rle.contains("counts"))
    throw WireError("mask: expected {\"size\": [h, w], \"counts\": \"...\"}");
  const auto& size = rle.at("size");
  if (!size.is_array() || size.size() != 2 || !size[0].is_number_integer() || !size[1].is_number_integer())
    throw WireError("mask: size must be [height, width]");
  Mask mask;
  mask.height = size[0].get<int>();
  mask.width = size[1].get<int>();
  if (mask.height < 0 || mask.width < 0 || static_cast<long long>(mask.height) * mask.width > (1LL << 28))
    throw WireError("mask: size out of range");
  const auto total = static_cast<size_t>(mask.height) * mask.width;
  std::vector<std::uint8_t> column_major(total, 0);
  size_t at = 0;
  std::uint8_t value = 0;
  for (auto run : rle_counts(rle.at("counts").get<std::string>())) {
    if (run > total - at) throw WireError("mask: runs longer than the mask");
    std::fill_n(column_major.begin() + static_cast<long>(at), run, value);
    at += run;
    value ^= 1;
  }
  if (at != total) throw WireError("mask: runs shorter than the mask");
  mask.pixels.assign(total, 0);
  for (int x = 0; x < mask.width; ++x)
    for (int y = 0; y < mask.height; ++y)
      mask.pixels[static_cast<size_t>(y) * mask.width + x] = column_major[static_cast<size_t>(x) * mask.height + y];
  return mask;
}

static Object decode_object(const nlohmann::json& o) {
  Object obj;
  if (!o.is_object()) throw WireError("object: not a JSON object");
  if (!o.at("track_id").is_null()) obj.track_id = o.at("track_id").get<std::int64_t>();
  obj.class_id = o.at("class_id").get<int>();
  obj.class_name = o.at("class_name").get<std::string>();
  obj.score = o.at("score").get<double>();
  const auto& box = o.at("box");
  if (!box.is_array() || box.size() != 4) throw WireError("object: box must be [x1, y1, x2, y2]");
  for (size_t i = 0; i < 4; ++i) obj.box[i] = box[i].get<double>();
  if (o.contains("keypoints") && !o.at("keypoints").is_null()) {
    std::vector<Keypoint> points;
    for (const auto& k : o.at("keypoints")) {
      if (!k.is_array() || k.size() != 3) throw WireError("object: a keypoint must be [x, y, conf]");
      points.push_back({k[0].get<double>(), k[1].get<double>(), k[2].get<double>()});
    }
    if (points.size() != 17) throw WireError("object: keypoints must hold 17 points");
    obj.keypoints = std::move(points);
  }
  if (o.contains("mask") && !o.at("mask").is_null()) obj.mask = decode_rle(o.at("mask"));
  return obj;
}

Message decode(const std::string& payload) {
  Message m;
  try {
    m.json = nlohmann::json::parse(payload);
    if (!m.json.is_object()) throw WireError("payload: not a JSON object");
    if (m.json.value("schema", 0) != 1) throw WireError("payload: schema is not 1");
    m.type = m.json.at("type").get<std::string>();
    m.source = m.json.at("source").get<std::string>();
    if (m.json.contains("seq")) m.seq = m.json.at("seq").get<std::int64_t>();
    if (m.type == "frame")
      for (const auto& o : m.json.at("objects")) m.objects.push_back(decode_object(o));
  } catch (const nlohmann::json::exception& err) {
    throw WireError(std::string("payload: ") + err.what());
  }
  return m;
}

}  // namespace segstream
