// Reads segstream's messages until every source has ended, and prints one JSON
// line per object: what a robot's C++ code gets from the wire.
//
//   segstream_subscriber tcp://127.0.0.1:5555 [--source ID]... [--timeout S]
//
// Without --source it reads every source and stops once each source it has
// heard from has sent its end-of-stream message. --timeout S: exit 1 after S
// seconds without a message. Malformed messages are reported and skipped.
#include <chrono>
#include <iostream>
#include <set>
#include <string>
#include <vector>

#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "wire.hpp"

namespace {

nlohmann::json summary(const segstream::Message& m, const segstream::Object& o) {
  nlohmann::json line = {{"source", m.source}, {"seq", m.seq}, {"class_name", o.class_name},
                         {"score", o.score}, {"box", o.box}};
  line["track_id"] = o.track_id ? nlohmann::json(*o.track_id) : nlohmann::json(nullptr);
  if (o.mask) {
    line["mask_area"] = o.mask->area();
    line["mask_bounds"] = o.mask->bounds();
  } else {
    line["mask_area"] = nullptr;
    line["mask_bounds"] = nullptr;
  }
  if (o.keypoints) {
    nlohmann::json points = nlohmann::json::array();
    for (const auto& k : *o.keypoints) points.push_back({k.x, k.y, k.conf});
    line["keypoints"] = points;
  } else {
    line["keypoints"] = nullptr;
  }
  return line;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: segstream_subscriber ENDPOINT [--source ID]... [--timeout S]\n";
    return 2;
  }
  std::string endpoint = argv[1];
  std::set<std::string> wanted;
  int timeout_ms = -1;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--source") wanted.insert(argv[i + 1]);
    else if (flag == "--timeout") timeout_ms = static_cast<int>(std::stod(argv[i + 1]) * 1000);
    else {
      std::cerr << "unknown flag " << flag << "\n";
      return 2;
    }
  }

  zmq::context_t context;
  zmq::socket_t socket(context, zmq::socket_type::sub);
  socket.set(zmq::sockopt::rcvtimeo, timeout_ms);
  socket.connect(endpoint);
  if (wanted.empty()) socket.set(zmq::sockopt::subscribe, "");
  for (const auto& id : wanted) socket.set(zmq::sockopt::subscribe, id + "/");  // '/' keeps cam1 from matching cam10

  std::set<std::string> seen, ended;
  while (true) {
    std::vector<zmq::message_t> parts;
    auto got = zmq::recv_multipart(socket, std::back_inserter(parts));
    if (!got) {
      std::cerr << "segstream_subscriber: no message on " << endpoint << "\n";
      return 1;
    }
    if (parts.size() != 2) {
      std::cerr << "skipping a message of " << parts.size() << " frames (expected topic, payload)\n";
      continue;
    }
    segstream::Message m;
    try {
      m = segstream::decode(parts[1].to_string());
    } catch (const segstream::WireError& err) {
      std::cerr << "skipping malformed message: " << err.what() << "\n";
      continue;
    }
    seen.insert(m.source);
    if (m.type == "frame") {
      for (const auto& o : m.objects) std::cout << summary(m, o).dump() << "\n";
    } else if (m.type == "eos") {
      ended.insert(m.source);
      const auto& all = wanted.empty() ? seen : wanted;
      bool done = true;
      for (const auto& id : all) done = done && ended.count(id) > 0;
      if (done) break;
    }
  }
  std::cout.flush();
  return 0;
}
