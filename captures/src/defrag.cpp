#include "hopscope/captures/defrag.hpp"

#include <algorithm>
#include <cstring>

namespace hopscope::captures {
namespace {
constexpr std::size_t kMaxPieces = 4096;  // fragments per datagram (hostile tiny overlaps)
}  // namespace

bool IpDefragmenter::add(const IpPacket& frag, Timestamp ts, Bytes& datagram) {
    ++stats_.fragments;
    auto it = std::find_if(pending_.begin(), pending_.end(), [&](const Pending& p) {
        return p.id == frag.frag_id && p.protocol == frag.protocol && p.src == frag.src &&
               p.dst == frag.dst;
    });
    if (it == pending_.end()) {
        if (pending_.size() >= limits_.max_pending) {
            auto oldest = std::min_element(
                pending_.begin(), pending_.end(),
                [](const Pending& a, const Pending& b) { return a.first < b.first; });
            pending_.erase(oldest);
            ++stats_.dropped;
        }
        Pending p;
        p.src = frag.src;
        p.dst = frag.dst;
        p.id = frag.frag_id;
        p.protocol = frag.protocol;
        p.first = ts;
        pending_.push_back(std::move(p));
        it = pending_.end() - 1;
    }
    const std::size_t begin = frag.frag_offset;
    const std::size_t len = frag.payload.size();
    const bool cut = frag.payload.size() < frag.wire_payload_len;
    if (cut || begin + len > limits_.max_datagram || it->ranges.size() >= kMaxPieces ||
        (!frag.more_fragments && it->have_last && begin + len != it->total)) {
        pending_.erase(it);
        ++stats_.dropped;
        return false;
    }
    if (it->data.size() < begin + len) it->data.resize(begin + len);
    if (len > 0) std::memcpy(it->data.data() + begin, frag.payload.data(), len);
    it->ranges.emplace_back(static_cast<std::uint32_t>(begin),
                            static_cast<std::uint32_t>(begin + len));
    if (!frag.more_fragments) {
        it->have_last = true;
        it->total = static_cast<std::uint32_t>(begin + len);
    }
    if (!complete(*it)) return false;
    done_.swap(it->data);
    done_.resize(it->total);
    pending_.erase(it);
    ++stats_.reassembled;
    datagram = Bytes(done_.data(), done_.size());
    return true;
}

bool IpDefragmenter::complete(Pending& p) {
    if (!p.have_last) return false;
    std::sort(p.ranges.begin(), p.ranges.end());
    std::uint32_t covered = 0;
    for (const auto& [b, e] : p.ranges) {
        if (b > covered) return false;
        covered = std::max(covered, e);
    }
    return covered >= p.total;
}

void IpDefragmenter::expire(Timestamp now) {
    const auto before = pending_.size();
    std::erase_if(pending_, [&](const Pending& p) {
        return now.micros - p.first.micros > limits_.timeout_us;
    });
    stats_.dropped += before - pending_.size();
}

}  // namespace hopscope::captures
