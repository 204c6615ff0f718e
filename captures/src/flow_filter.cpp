#include "hopscope/captures/flow_filter.hpp"

#include <cstring>

namespace hopscope::captures {

const char* to_string(FlowClass c) {
    switch (c) {
        case FlowClass::Undecided:
            return "undecided";
        case FlowClass::Tds:
            return "tds";
        case FlowClass::Kerberos:
            return "kerberos";
        case FlowClass::Other:
            return "other";
        case FlowClass::Dropped:
            return "dropped";
    }
    return "?";
}

bool looks_like_tds_client_start(Bytes p) {
    // MS-TDS 2.2.3.1 packet header: Type(1) Status(1) Length(2, BE) SPID(2) PacketID(1) Window(1)
    if (p.size() < 8) return false;
    const std::uint8_t type = p[0];
    if (type != 0x12 && type != 0x10) return false;
    if (p[1] != 0x01) return false;  // a login's first packet is a whole message (EOM)
    const std::size_t len = load_u16be(&p[2]);
    if (len <= 8 || len > 32768) return false;
    if (p[7] != 0) return false;  // Window: always 0
    if (type == 0x12) {
        // PRELOGIN option list starts with VERSION (token 0x00) whose offset lies in the body.
        if (p.size() < 11) return true;  // cannot see more; the header alone already fits
        if (p[8] != 0x00) return false;
        const std::size_t off = load_u16be(&p[9]);
        return off >= 5 && off < len - 8;
    }
    // LOGIN7 (MS-TDS 2.2.6.4): Length (LE u32) covers the whole login record; minimum fixed part
    // is 94 bytes, and it cannot exceed the packet body.
    if (len < 8 + 94) return false;
    if (p.size() < 12) return true;
    const std::uint32_t login_len = load_u32le(&p[8]);
    return login_len >= 94 && login_len <= len - 8;
}

bool is_tls_client_hello_with_tds8_alpn(Bytes p) {
    // RFC 8446 5.1 record: type(1)=22 version(2) length(2); 4.1.2 ClientHello inside.
    ByteReader r(p);
    std::uint8_t ctype = 0, vmaj = 0, vmin = 0, htype = 0;
    std::uint16_t rlen = 0;
    if (!r.u8(ctype) || ctype != 22 || !r.u8(vmaj) || vmaj != 3 || !r.u8(vmin) || vmin > 4 ||
        !r.u16be(rlen) || !r.u8(htype) || htype != 1)
        return false;
    // handshake length(3), client_version(2), random(32)
    std::uint8_t sid_len = 0;
    std::uint16_t cs_len = 0, ext_total = 0;
    std::uint8_t comp_len = 0;
    if (!r.skip(3 + 2 + 32) || !r.u8(sid_len) || !r.skip(sid_len) || !r.u16be(cs_len) ||
        !r.skip(cs_len) || !r.u8(comp_len) || !r.skip(comp_len) || !r.u16be(ext_total))
        return false;
    static constexpr char kTds8[] = "tds/8.0";
    while (!r.empty()) {
        std::uint16_t etype = 0, elen = 0;
        if (!r.u16be(etype) || !r.u16be(elen)) return false;
        if (etype != 16) {  // not ALPN
            if (!r.skip(elen)) return false;
            continue;
        }
        std::uint16_t list_len = 0;
        if (!r.u16be(list_len)) return false;
        auto list = r.sub(r.position(), list_len < r.remaining() ? list_len : r.remaining());
        if (!list) return false;
        while (!list->empty()) {
            std::uint8_t nlen = 0;
            Bytes name;
            if (!list->u8(nlen) || !list->bytes(nlen, name)) return false;
            if (nlen == sizeof kTds8 - 1 && std::memcmp(name.data(), kTds8, nlen) == 0) return true;
        }
        return false;
    }
    return false;
}

}  // namespace hopscope::captures
