// TLS secrets embedded in a pcapng file: Decryption Secrets Blocks (block type 0x0A) of type
// "TLSK" (0x544c534b), which hold NSS key log lines. Wireshark's `editcap --inject-secrets`
// writes them, and so does `hopscope proxy --record` for the connections whose TLS it
// terminates. libpcap skips these blocks, so they are read by a scan of the block headers
// before the packets are: sequential reads of the whole file, about as fast as the disk or the
// page cache (pcapng only; a classic pcap file has no such blocks and is not scanned).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace hopscope::captures {

struct PcapngSecrets {
    std::string keylog;      ///< the TLSK blocks' text, one after the other
    std::size_t blocks = 0;  ///< TLSK blocks found
    bool truncated = false;  ///< the text reached `max_bytes` and the rest was left out
    /// The section headers' comments (opt_comment), in file order: `hopscope proxy --record`
    /// writes how it saw the traffic there.
    std::vector<std::string> section_comments;
};

/// Scans `path` for TLS key log secrets. A file that is not pcapng, cannot be read or is
/// damaged yields what was found before (the packet reader reports the damage itself).
PcapngSecrets read_pcapng_secrets(const std::string& path, std::size_t max_bytes = 64u << 20);

}  // namespace hopscope::captures
