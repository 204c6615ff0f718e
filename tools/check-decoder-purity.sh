#!/usr/bin/env bash
# decoder/ is pure: no files, streams, sockets, environment, threads, clock reads or logging, so
# that its events depend only on the bytes and timestamps a front-end hands it (pcap, live and the
# proxy give identical events for identical input; docs/architecture.md). This check greps the
# decoder's sources for what would break that and fails with every offending line.
#
# Usage: tools/check-decoder-purity.sh [DECODER_DIR]   (ctest runs it as decoder_purity)
# Comments (// ... and block-comment lines) are not looked at.
set -euo pipefail

dir=${1:-"$(dirname "$0")/../decoder"}

labels=(
    "file or stream I/O"
    "sockets or environment"
    "threads"
    "clock read"
    "logging or console output"
)
regexes=(
    '#[[:space:]]*include[[:space:]]*<(fstream|iostream|istream|ostream|filesystem)>|std::(ifstream|ofstream|fstream|filesystem|cin)\b|\b(fopen|freopen|fdopen|fread|fwrite|fclose|fgets|fscanf)[[:space:]]*\('
    '#[[:space:]]*include[[:space:]]*<(unistd\.h|fcntl\.h|sys/[a-z_]+\.h|netinet/[a-z_]+\.h|arpa/inet\.h|netdb\.h|boost/asio[a-z_/.]*)>|\b(getenv|secure_getenv|setenv)[[:space:]]*\('
    '#[[:space:]]*include[[:space:]]*<(thread|mutex|shared_mutex|condition_variable|future|atomic|semaphore|latch|barrier|stop_token|pthread\.h)>|std::(thread|jthread|mutex|async|atomic)\b|\bpthread_'
    '#[[:space:]]*include[[:space:]]*<(chrono|ctime|time\.h)>|std::chrono\b|::now[[:space:]]*\(|\b(clock_gettime|gettimeofday|localtime|localtime_r|gmtime|gmtime_r|mktime|timegm|strftime)[[:space:]]*\(|\b(std::)?(time|clock)[[:space:]]*\([[:space:]]*(nullptr|NULL|0)?[[:space:]]*\)'
    'spdlog|syslog|\b(printf|vprintf|fprintf|vfprintf|puts|fputs|putchar|perror)[[:space:]]*\(|std::(cout|cerr|clog|print|println)\b'
)

files=$(find "$dir" -type f \( -name '*.cpp' -o -name '*.hpp' -o -name '*.h' \) | sort)
if [[ -z $files ]]; then
    echo "check-decoder-purity: no sources under $dir" >&2
    exit 2
fi

found=0
for f in $files; do
    # Comments out, line numbers kept.
    code=$(sed -E 's://.*$::; s:^[[:space:]]*/\*.*$::; s:^[[:space:]]*\*([[:space:]/].*)?$::' "$f")
    for i in "${!regexes[@]}"; do
        hits=$(printf '%s\n' "$code" | grep -nE -- "${regexes[$i]}" | cut -d: -f1 || true)
        for n in $hits; do
            echo "$f:$n: ${labels[$i]}: $(sed -n "${n}p" "$f" | sed -E 's/^[[:space:]]+//')"
            found=$((found + 1))
        done
    done
done

# The library links nothing that does I/O, threads or logging (libcrypto only computes).
cmake_file="$dir/CMakeLists.txt"
if [[ -f $cmake_file ]]; then
    hits=$(sed -E 's:#.*$::' "$cmake_file" |
        grep -nE 'spdlog|Threads::|Boost::|pcap|OpenSSL::SSL|nlohmann|CLI11' | cut -d: -f1 || true)
    for n in $hits; do
        echo "$cmake_file:$n: links a library with I/O, threads or logging: $(sed -n "${n}p" "$cmake_file" | sed -E 's/^[[:space:]]+//')"
        found=$((found + 1))
    done
fi

if ((found)); then
    echo "check-decoder-purity: $found line(s) above break the decoder's purity: I/O, the clock," \
        "threads and logging belong to the front-ends (captures/, proxy/, tools/)" >&2
    exit 1
fi
echo "check-decoder-purity: $(wc -w <<<"$files") files clean"
