// hopscope-pcapread: the ceiling for reading a capture file - a bare libpcap loop
// (pcap_open_offline + pcap_next_ex) that touches each packet minimally (sums the captured
// lengths and the first and last byte). Prints bytes, packets, seconds, MB/s and packets/s.
#include <pcap/pcap.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdint>
#include <cstdio>

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fputs("usage: hopscope-pcapread FILE\n", stderr);
        return 2;
    }
    char err[PCAP_ERRBUF_SIZE] = {};
    const auto t0 = std::chrono::steady_clock::now();
    pcap_t* p = pcap_open_offline(argv[1], err);
    if (p == nullptr) {
        std::fprintf(stderr, "hopscope-pcapread: %s\n", err);
        return 1;
    }
    std::uint64_t packets = 0, caplen = 0, touch = 0;
    pcap_pkthdr* h = nullptr;
    const u_char* data = nullptr;
    int rc = 0;
    while ((rc = pcap_next_ex(p, &h, &data)) == 1) {
        ++packets;
        caplen += h->caplen;
        if (h->caplen > 0) touch += data[0] + data[h->caplen - 1];
    }
    if (rc == PCAP_ERROR) std::fprintf(stderr, "hopscope-pcapread: %s\n", pcap_geterr(p));
    pcap_close(p);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    struct stat st {};
    const std::uint64_t bytes =
        stat(argv[1], &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : caplen;
    std::printf(
        "bytes=%llu packets=%llu seconds=%.3f mb_per_s=%.1f packets_per_s=%.0f check=%llu\n",
        static_cast<unsigned long long>(bytes), static_cast<unsigned long long>(packets), s,
        static_cast<double>(bytes) / 1e6 / s, static_cast<double>(packets) / s,
        static_cast<unsigned long long>(touch));
    return rc == PCAP_ERROR ? 1 : 0;
}
