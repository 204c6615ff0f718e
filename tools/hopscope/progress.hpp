// A one-line progress bar on stderr for reading capture files: bytes read / total, MB/s, ETA.
#pragma once

#include <chrono>
#include <cstdio>

#include "hopscope/captures/capture_source.hpp"

namespace hopscope::cli {

class ProgressBar {
  public:
    /// Draws only when `enabled` (the caller checks that `out` is a terminal).
    ProgressBar(std::FILE* out, bool enabled);
    void update(const captures::ReadProgress& p);
    /// Removes the bar so that the next output starts on a clean line.
    void clear();

  private:
    std::FILE* out_;
    bool enabled_;
    bool drawn_ = false;
    std::chrono::steady_clock::time_point start_;
    std::chrono::steady_clock::time_point last_;
};

}  // namespace hopscope::cli
