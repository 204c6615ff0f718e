# End-to-end checks of hopscope on the lab captures (tests/e2e/README.md). Included from
# tests/CMakeLists.txt when the hopscope binary is built.
add_test(NAME e2e_analyze_lab_captures
         COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/analyze_lab_captures.sh $<TARGET_FILE:hopscope>
                 ${PROJECT_SOURCE_DIR}/captures/lab)
set_tests_properties(e2e_analyze_lab_captures PROPERTIES LABELS e2e)

# The inline proxy: every lab capture's TDS connections replayed through `hopscope proxy`.
add_test(NAME e2e_proxy_replay_lab_captures
         COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/proxy_replay_lab.sh $<TARGET_FILE:hopscope>
                 ${PROJECT_SOURCE_DIR}/captures/lab)
set_tests_properties(e2e_proxy_replay_lab_captures PROPERTIES LABELS e2e TIMEOUT 600)

# The proxy on a real TPROXY path (namespaces, iptables TPROXY, FreeTDS, the lab server):
# skipped (77) without root or TPROXY.
if(TARGET hopscope-labserver)
    add_test(NAME e2e_proxy_tproxy_path
             COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/tproxy_path.sh $<TARGET_FILE:hopscope>
                     $<TARGET_FILE:hopscope-labserver>)
    set_tests_properties(e2e_proxy_tproxy_path
                         PROPERTIES LABELS e2e TIMEOUT 120 SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)
endif()

# The proxy terminating TLS between FreeTDS and the lab server on loopback (full and login-only
# encryption): the login read inside TLS, the recording's embedded secrets read by analyze and
# tshark. Skipped (77) without tsql.
if(TARGET hopscope-labserver)
    add_test(NAME e2e_proxy_tls_terminate
             COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/proxy_tls_terminate.sh $<TARGET_FILE:hopscope>
                     $<TARGET_FILE:hopscope-labserver>)
    set_tests_properties(e2e_proxy_tls_terminate
                         PROPERTIES LABELS e2e TIMEOUT 120 SKIP_RETURN_CODE 77)
endif()

# `hopscope live` on every lab capture replayed with tcpreplay into a veth pair: its events equal
# `hopscope analyze`'s on the same packets, with the default capture settings and with
# --buffer-size 1, and nothing dropped. Skipped (77) without root, tcpreplay or tcpdump.
add_test(NAME e2e_live_replay
         COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/live_replay.sh $<TARGET_FILE:hopscope>
                 ${PROJECT_SOURCE_DIR}/captures/lab)
set_tests_properties(e2e_live_replay
                     PROPERTIES LABELS e2e TIMEOUT 300 SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)

# `analyze --threads 2` and `3` (the flows decoded in parallel) give the same events, summary,
# console output and exit status as `--threads 1` on every capture in the repository (with their
# keytabs and key logs), all lab captures at once, a capture cut short, standard input, and
# (with the benchmarks built) generated captures large enough for many hand-overs.
set(HOPSCOPE_THREADS_EQUAL_GENCAP "")
if(HOPSCOPE_BENCH)
  set(HOPSCOPE_THREADS_EQUAL_GENCAP $<TARGET_FILE:hopscope-gencap>)
endif()
add_test(NAME e2e_analyze_threads_equal
         COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/analyze_threads_equal.sh $<TARGET_FILE:hopscope>
                 ${PROJECT_SOURCE_DIR} ${HOPSCOPE_THREADS_EQUAL_GENCAP})
set_tests_properties(e2e_analyze_threads_equal PROPERTIES LABELS e2e TIMEOUT 600)
