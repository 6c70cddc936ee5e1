// Decoding segstream's messages (stream/SCHEMA.md, schema 1) in C++:
// objects, COCO RLE masks and COCO keypoints. No dependency on segstream.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace segstream {

// Raised for a message this reader cannot use: bad JSON, another schema, a malformed field.
struct WireError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// One instance mask at frame size, row-major (index y * width + x), 1 = object.
struct Mask {
  int height = 0;
  int width = 0;
  std::vector<std::uint8_t> pixels;

  long area() const;
  // Tight [x1, y1, x2, y2) box of the mask's pixels (exclusive right/bottom); all 0 when empty.
  std::array<int, 4> bounds() const;
};

struct Keypoint {
  double x, y, conf;  // conf 0: not found
};

struct Object {
  std::optional<std::int64_t> track_id;  // null with --tracker none
  int class_id = 0;
  std::string class_name;
  double score = 0;
  std::array<double, 4> box{};              // x1, y1, x2, y2 in pixels
  std::optional<std::vector<Keypoint>> keypoints;  // 17 in COCO order, when a pose model ran
  std::optional<Mask> mask;                 // when a segmentation model ran
};

struct Message {
  std::string type;    // "frame", "status" or "eos"
  std::string source;  // source id, the topic without its trailing '/'
  std::int64_t seq = 0;
  nlohmann::json json;           // the whole payload, for the fields not decoded here
  std::vector<Object> objects;   // frame messages only
};

// Counts of a COCO compressed RLE string (maskApi.c, rleFrString).
std::vector<std::uint32_t> rle_counts(const std::string& counts);
// A mask from {"size": [h, w], "counts": "..."}; runs alternate 0s and 1s, column-major.
Mask decode_rle(const nlohmann::json& rle);
// A payload as published; throws WireError for anything but schema 1.
Message decode(const std::string& payload);

}  // namespace segstream
