// Fuzz target: SQL batch and RPC request parsing. The first input byte picks the TDS version
// (unknown / 7.1 / 7.4) and the text limit; the rest is the message payload.
#include <cstddef>
#include <cstdint>

#include "hopscope/tds/requests.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    static const std::uint32_t versions[] = {0, 0x71000001, 0x74000004, 0x08000000};
    const std::uint32_t version = versions[data[0] & 3];
    hopscope::tds::RequestLimits limits;
    limits.max_text_chars = (data[0] & 4) ? 8 : 4096;
    limits.max_params = (data[0] & 8) ? 2 : 256;
    const hopscope::Bytes payload(data + 1, size - 1);
    hopscope::tds::SqlBatch batch;
    (void)hopscope::tds::parse_sql_batch(payload, version, batch, limits).ok();
    if (batch.text.size() > limits.max_text_chars * 3 + 64) __builtin_trap();
    hopscope::tds::RpcRequest rpc;
    (void)hopscope::tds::parse_rpc(payload, version, rpc, limits).ok();
    for (const auto& call : rpc.calls) {
        if (call.params.size() > limits.max_params) __builtin_trap();
        if (call.statement.size() > limits.max_text_chars * 3 + 64) __builtin_trap();
    }
    return 0;
}
