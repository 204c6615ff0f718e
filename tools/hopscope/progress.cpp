#include "progress.hpp"

#include <string>

namespace hopscope::cli {

ProgressBar::ProgressBar(std::FILE* out, bool enabled)
    : out_(out), enabled_(enabled), start_(std::chrono::steady_clock::now()), last_(start_) {}

void ProgressBar::update(const captures::ReadProgress& p) {
    if (!enabled_ || p.done) return;
    const auto now = std::chrono::steady_clock::now();
    if (drawn_ && now - last_ < std::chrono::milliseconds(100)) return;  // at most 10 redraws/s
    last_ = now;
    const double secs = std::chrono::duration<double>(now - start_).count();
    const double mb = static_cast<double>(p.bytes_read) / 1e6;
    const double rate = secs > 0 ? mb / secs : 0;
    std::string name = p.file ? *p.file : "";
    if (name.size() > 30) name = "..." + name.substr(name.size() - 27);
    if (p.bytes_total > 0) {
        const double frac =
            std::min(1.0, static_cast<double>(p.bytes_read) / static_cast<double>(p.bytes_total));
        constexpr int kWidth = 24;
        const int fill = static_cast<int>(frac * kWidth);
        std::string bar(static_cast<std::size_t>(fill), '=');
        bar.resize(kWidth, ' ');
        const double total_mb = static_cast<double>(p.bytes_total) / 1e6;
        const double eta = rate > 0 ? (total_mb - mb) / rate : 0;
        std::fprintf(out_, "\r[%s] %5.1f%%  %.1f/%.1f MB  %.1f MB/s  ETA %d:%02d  %s\033[K",
                     bar.c_str(), frac * 100, mb, total_mb, rate, static_cast<int>(eta) / 60,
                     static_cast<int>(eta) % 60, name.c_str());
    } else {
        std::fprintf(out_, "\r%.1f MB  %.1f MB/s  %llu frames  %s\033[K", mb, rate,
                     static_cast<unsigned long long>(p.frames), name.c_str());
    }
    std::fflush(out_);
    drawn_ = true;
}

void ProgressBar::clear() {
    if (!drawn_) return;
    std::fputs("\r\033[K", out_);
    std::fflush(out_);
    drawn_ = false;
}

}  // namespace hopscope::cli
