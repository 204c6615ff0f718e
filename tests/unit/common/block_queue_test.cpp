#include "hopscope/common/block_queue.hpp"

#include <gtest/gtest.h>

#include <deque>
#include <string>

namespace hopscope {
namespace {

// Long enough that every string is on the heap: a lost or doubled destruction shows under ASan.
std::string text(int i) {
    return "element number " + std::to_string(i) + " of the window, on the heap";
}

TEST(BlockQueue, MatchesADequeAcrossBlocksAsItWalksOn) {
    // Appends and drops in uneven steps, so that the front and the back cross block boundaries
    // at every offset, the queue empties inside a block and at a block's end, and a spare block
    // is taken back; every element is checked against std::deque after each step.
    BlockQueue<std::string, 4> q;
    std::deque<std::string> ref;
    int next = 0;
    auto check = [&] {
        ASSERT_EQ(q.size(), ref.size());
        ASSERT_EQ(q.empty(), ref.empty());
        for (std::size_t i = 0; i < ref.size(); ++i)
            ASSERT_EQ(q[i], ref[i]) << i;
        if (!ref.empty()) {
            EXPECT_EQ(q.front(), ref.front());
            EXPECT_EQ(q.back(), ref.back());
        }
    };
    for (int round = 0; round < 40; ++round) {
        const int add = (round * 7) % 11;
        for (int k = 0; k < add; ++k) {
            const std::string& made = q.emplace_back(text(next));
            EXPECT_EQ(made, text(next));
            ref.push_back(text(next++));
        }
        check();
        const int drop = std::min<int>((round * 5) % 13, static_cast<int>(ref.size()));
        for (int k = 0; k < drop; ++k) {
            q.pop_front();
            ref.pop_front();
        }
        check();
        if (round % 9 == 8) {  // empty it: the next one starts a block again
            q.drop_front(q.size());
            ref.clear();
            check();
        }
    }
}

TEST(BlockQueue, ReferencesStayValidWhileTheWindowMoves) {
    BlockQueue<std::string, 2> q;
    q.emplace_back(text(0));
    q.emplace_back(text(1));
    const std::string& kept = q[1];
    for (int i = 2; i < 50; ++i)
        q.emplace_back(text(i));
    q.pop_front();
    EXPECT_EQ(&kept, &q.front());
    EXPECT_EQ(kept, text(1));
    q.clear();
    EXPECT_TRUE(q.empty());
    q.emplace_back(text(7));
    EXPECT_EQ(q.front(), text(7));
}

}  // namespace
}  // namespace hopscope
