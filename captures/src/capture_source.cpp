#include "hopscope/captures/capture_source.hpp"

#include <pcap/pcap.h>
#include <sys/stat.h>
#include <sys/time.h>

#include <cstdio>
#include <cstring>

#include "hopscope/captures/frame.hpp"

namespace hopscope::captures {
namespace {

constexpr std::uint32_t kPcapMagicUs = 0xA1B2C3D4;
constexpr std::uint32_t kPcapMagicNs = 0xA1B23C4D;
constexpr std::size_t kIoBuffer = 1 << 20;

Timestamp to_ts(const pcap_pkthdr& h) {
    return Timestamp{static_cast<std::int64_t>(h.ts.tv_sec) * 1'000'000 +
                     static_cast<std::int64_t>(h.ts.tv_usec)};
}

}  // namespace

std::string CaptureError::to_string() const {
    std::string s = file + ": " + message;
    if (offset) s += " (at byte offset " + std::to_string(*offset) + ")";
    if (frames_read > 0) s += "; " + std::to_string(frames_read) + " frames before it were read";
    return s;
}

std::unique_ptr<CaptureFile> CaptureFile::open(const std::string& path, CaptureError& err) {
    err = CaptureError{};
    err.file = path;
    std::FILE* fp = nullptr;
    if (path == "-") {
        fp = stdin;
    } else {
        fp = std::fopen(path.c_str(), "rb");
        if (fp == nullptr) {
            err.message = std::string("cannot open: ") + std::strerror(errno);
            return nullptr;
        }
    }
    // libpcap reads each record with fread through the FILE's buffer (4 KiB by default): a
    // larger one saves most of the stdio and read(2) overhead. Must be set before any I/O.
    // Standard input gets a buffer that lives as long as the process, set on its first use only.
    std::unique_ptr<char[]> iobuf;
    if (fp == stdin) {
        static bool stdin_buffered = false;
        static std::unique_ptr<char[]> stdin_buf;
        if (!stdin_buffered) {
            stdin_buffered = true;
            stdin_buf = std::make_unique<char[]>(kIoBuffer);
            std::setvbuf(fp, stdin_buf.get(), _IOFBF, kIoBuffer);
        }
    } else {
        iobuf = std::make_unique<char[]>(kIoBuffer);
        if (std::setvbuf(fp, iobuf.get(), _IOFBF, kIoBuffer) != 0) iobuf.reset();
    }
    return open_impl(fp, path, err, std::move(iobuf));
}

std::unique_ptr<CaptureFile> CaptureFile::open_stream(std::FILE* fp, const std::string& name,
                                                      CaptureError& err) {
    return open_impl(fp, name, err, nullptr);
}

std::unique_ptr<CaptureFile> CaptureFile::open_impl(std::FILE* fp, const std::string& name,
                                                    CaptureError& err,
                                                    std::unique_ptr<char[]> iobuf) {
    err = CaptureError{};
    err.file = name;
    std::unique_ptr<CaptureFile> cf(new CaptureFile());
    cf->path_ = name;
    cf->iobuf_ = std::move(iobuf);
    char errbuf[PCAP_ERRBUF_SIZE] = {};
    struct stat sb {};
    const int fd = fileno(fp);
    if (fd >= 0 && fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode)) {
        cf->total_ = static_cast<std::uint64_t>(sb.st_size);
        // Peek at the magic so that offsets in pcap files can be exact (own accounting).
        unsigned char m[4] = {};
        const long pos = std::ftell(fp);
        if (pos >= 0 && std::fread(m, 1, 4, fp) == 4) {
            const std::uint32_t le = load_u32le(m);
            const std::uint32_t be = load_u32be(m);
            cf->classic_pcap_ = le == kPcapMagicUs || le == kPcapMagicNs || be == kPcapMagicUs ||
                                be == kPcapMagicNs;
        }
        if (pos < 0 || std::fseek(fp, pos, SEEK_SET) != 0) cf->classic_pcap_ = false;
        cf->accounted_ = static_cast<std::uint64_t>(pos < 0 ? 0 : pos) + 24;
    }
    cf->handle_ = pcap_fopen_offline_with_tstamp_precision(fp, PCAP_TSTAMP_PRECISION_MICRO, errbuf);
    if (cf->handle_ == nullptr) {
        if (fp != stdin) std::fclose(fp);
        err.message = std::string("not a readable pcap/pcapng capture: ") + errbuf;
        err.offset = 0;
        return nullptr;
    }
    cf->linktype_ = pcap_datalink(cf->handle_);
    if (!is_supported_linktype(cf->linktype_)) {
        const char* lname = pcap_datalink_val_to_name(cf->linktype_);
        err.message = "unsupported link type " + std::to_string(cf->linktype_) + " (" +
                      (lname ? lname : "unknown") +
                      "); supported: Ethernet, Linux cooked (SLL, SLL2), raw IP, BSD loopback, PPP";
        return nullptr;
    }
    cf->error_.file = name;
    return cf;
}

CaptureFile::~CaptureFile() {
    if (handle_ != nullptr) pcap_close(handle_);  // also closes the FILE (stdin included)
}

int CaptureFile::next(PacketView& out) {
    pcap_pkthdr* hdr = nullptr;
    const u_char* data = nullptr;
    const int rc = pcap_next_ex(handle_, &hdr, &data);
    if (rc == 1) {
        ++frames_;
        accounted_ += 16 + hdr->caplen;
        out.ts = to_ts(*hdr);
        out.data = Bytes(data, hdr->caplen);
        out.wire_len = hdr->len;
        out.linktype = linktype_;
        out.file_frame = frames_;
        return 1;
    }
    if (rc == PCAP_ERROR_BREAK) return 0;  // end of file
    error_.file = path_;
    error_.message = std::string("damaged capture: ") + pcap_geterr(handle_);
    error_.frames_read = frames_;
    if (classic_pcap_) {
        error_.offset = accounted_;  // where the record that could not be read starts
    } else if (std::FILE* fp = pcap_file(handle_)) {
        const long pos = std::ftell(fp);
        if (pos >= 0) error_.offset = static_cast<std::uint64_t>(pos);
    }
    return -1;
}

std::uint64_t CaptureFile::bytes_read() const {
    if (classic_pcap_) return accounted_;
    if (std::FILE* fp = pcap_file(handle_)) {
        const long pos = std::ftell(fp);
        if (pos >= 0) return static_cast<std::uint64_t>(pos);
    }
    return accounted_;
}

ReadResult read_captures(const std::vector<std::string>& paths, StreamAssembler& assembler,
                         const ReadOptions& options) {
    ReadResult result;
    struct Source {
        std::unique_ptr<CaptureFile> file;
        PacketView pkt;
        bool has = false;
    };
    std::vector<Source> sources;
    sources.reserve(paths.size());
    bool sizes_known = true;
    std::uint64_t total = 0;
    for (std::size_t i = 0; i < paths.size(); ++i) {
        CaptureError err;
        auto f = CaptureFile::open(paths[i], err);
        if (!f) {
            result.errors.push_back(std::move(err));
            continue;
        }
        if (f->bytes_total() == 0) sizes_known = false;
        total += f->bytes_total();
        Source s;
        s.file = std::move(f);
        s.pkt.file_index = i;
        sources.push_back(std::move(s));
    }
    auto advance = [&](Source& s) {
        const std::size_t idx = s.pkt.file_index;
        const int rc = s.file->next(s.pkt);
        s.pkt.file_index = idx;
        s.has = rc == 1;
        if (rc < 0) result.errors.push_back(s.file->error());
    };
    for (auto& s : sources)
        advance(s);

    ReadProgress prog;
    prog.bytes_total = sizes_known ? total : 0;
    auto report = [&](std::size_t file_index, bool done) {
        if (!options.progress) return;
        prog.file_index = file_index;
        prog.file = file_index < paths.size() ? &paths[file_index] : nullptr;
        prog.bytes_read = 0;
        prog.file_bytes_read = prog.file_bytes_total = 0;
        for (const auto& s : sources) {
            const std::uint64_t n = s.file->bytes_read();
            prog.bytes_read += n;
            if (s.pkt.file_index == file_index) {
                prog.file_bytes_read = n;
                prog.file_bytes_total = s.file->bytes_total();
            }
        }
        prog.frames = result.frames;
        prog.done = done;
        options.progress(prog);
    };

    Timestamp last{};
    const std::uint64_t every = options.progress_every ? options.progress_every : 4096;
    for (;;) {
        if (options.stop && options.stop->load(std::memory_order_relaxed)) break;
        Source* best = nullptr;
        for (auto& s : sources) {
            if (s.has && (best == nullptr || s.pkt.ts < best->pkt.ts)) best = &s;
        }
        if (best == nullptr) break;
        best->pkt.frame = ++result.frames;
        last = best->pkt.ts;
        assembler.on_frame(best->pkt.linktype, best->pkt.ts, best->pkt.data, best->pkt.frame);
        const std::size_t fi = best->pkt.file_index;
        advance(*best);
        if (result.frames % every == 0) report(fi, false);
    }
    assembler.finish(last);
    report(sources.empty() ? 0 : sources.back().pkt.file_index, true);
    return result;
}

// ---- live
// ----------------------------------------------------------------------------------------

LiveCapture::~LiveCapture() {
    if (handle_ != nullptr) pcap_close(handle_);
}

bool LiveCapture::open(const LiveOptions& o, std::string& error) {
    char errbuf[PCAP_ERRBUF_SIZE] = {};
    const std::string where = "interface " + o.interface + ": ";
    handle_ = pcap_create(o.interface.c_str(), errbuf);
    if (handle_ == nullptr) {
        error = where + errbuf;
        return false;
    }
    pcap_set_snaplen(handle_, o.snaplen);
    pcap_set_promisc(handle_, o.promiscuous ? 1 : 0);
    pcap_set_timeout(handle_, o.timeout_ms);
    pcap_set_immediate_mode(handle_, o.immediate ? 1 : 0);
    pcap_set_buffer_size(handle_, o.buffer_bytes);
    pcap_set_tstamp_precision(handle_, PCAP_TSTAMP_PRECISION_MICRO);
    const int rc = pcap_activate(handle_);
    if (rc < 0) {
        const char* detail = pcap_geterr(handle_);
        error = where + ((detail != nullptr && *detail != '\0') ? detail : pcap_statustostr(rc));
        if (rc == PCAP_ERROR_PERM_DENIED)
            error += " (capturing needs root or the CAP_NET_RAW capability)";
        pcap_close(handle_);
        handle_ = nullptr;
        return false;
    }
    linktype_ = pcap_datalink(handle_);
    if (!is_supported_linktype(linktype_)) {
        error = where + "unsupported link type " + std::to_string(linktype_);
        return false;
    }
    if (!o.filter.empty()) {
        bpf_program prog{};
        if (pcap_compile(handle_, &prog, o.filter.c_str(), 1, PCAP_NETMASK_UNKNOWN) != 0) {
            error = where + "bad capture filter '" + o.filter + "': " + pcap_geterr(handle_);
            return false;
        }
        const int src = pcap_setfilter(handle_, &prog);
        pcap_freecode(&prog);
        if (src != 0) {
            error = where + "cannot set filter: " + pcap_geterr(handle_);
            return false;
        }
    }
    return true;
}

bool LiveCapture::run(StreamAssembler& assembler, std::string& error) {
    if (handle_ == nullptr) {
        error = "live capture not open";
        return false;
    }
    struct Ctx {
        StreamAssembler* a;
        int lt;
        std::atomic<std::uint64_t>* frames;
        Timestamp last;
    } ctx{&assembler, linktype_, &frames_, Timestamp{}};
    auto cb = [](u_char* user, const pcap_pkthdr* h, const u_char* bytes) {
        auto* c = reinterpret_cast<Ctx*>(user);
        c->last = to_ts(*h);
        c->a->on_frame(c->lt, c->last, Bytes(bytes, h->caplen), c->frames->fetch_add(1) + 1);
    };
    while (!stop_.load()) {
        const int rc = pcap_dispatch(handle_, -1, cb, reinterpret_cast<u_char*>(&ctx));
        if (rc == PCAP_ERROR_BREAK) break;
        if (rc == 0) {
            // A quiet read timeout: let the wall clock (what live timestamps are) age idle flows.
            timeval tv{};
            gettimeofday(&tv, nullptr);
            assembler.advance_time(
                Timestamp{static_cast<std::int64_t>(tv.tv_sec) * 1'000'000 + tv.tv_usec});
        }
        if (rc < 0) {
            error = std::string("capture failed: ") + pcap_geterr(handle_);
            assembler.finish(ctx.last);
            return false;
        }
    }
    // Stopped (Ctrl-C): the kernel may already hold packets that were not handed over yet - the
    // last replies of a connection that just ended. Read what it had accepted by now, without
    // blocking and within a bounded time, so that they are not silently lost.
    pcap_stat ps{};
    char errbuf[PCAP_ERRBUF_SIZE] = {};
    if (pcap_stats(handle_, &ps) == 0 && pcap_setnonblock(handle_, 1, errbuf) == 0) {
        timeval start{}, now{};
        gettimeofday(&start, nullptr);
        while (frames_.load() < ps.ps_recv) {
            if (pcap_dispatch(handle_, -1, cb, reinterpret_cast<u_char*>(&ctx)) <= 0) break;
            gettimeofday(&now, nullptr);
            if ((now.tv_sec - start.tv_sec) * 1'000'000 + (now.tv_usec - start.tv_usec) > 1'000'000)
                break;
        }
    }
    assembler.finish(ctx.last);
    return true;
}

void LiveCapture::stop() {
    stop_.store(true);
    if (handle_ != nullptr) pcap_breakloop(handle_);
}

LiveStats LiveCapture::stats() const {
    LiveStats s;
    s.frames = frames_.load();
    pcap_stat ps{};
    if (handle_ != nullptr && pcap_stats(handle_, &ps) == 0) {
        s.received = ps.ps_recv;
        s.dropped = ps.ps_drop;
        s.if_dropped = ps.ps_ifdrop;
    }
    return s;
}

}  // namespace hopscope::captures
