// Proves OrgState::CostCenterOf answers every structure, even a damaged one
// loaded from storage, with a value or a Status, never an exception (it runs
// on the ledger's writer thread, where an exception would end the process).
#include "projections/org_state.h"

#include <gtest/gtest.h>

namespace billing::projections {
namespace {

Timestamp At(const char* text) { return *ParseTimestamp(text, "at"); }

OrgState TwoWorkspaces() {
  OrgState org;
  org.org_id = "o";
  org.cost_centers["cc-a"] = CostCenterInfo{"A", std::nullopt};
  org.cost_centers["cc-b"] = CostCenterInfo{"B", std::nullopt};
  org.workspaces["ws-a"] = "cc-a";
  org.workspaces["ws-b"] = "cc-b";
  org.providers["p1"] = ProviderInfo{"P",
                                     "aws",
                                     {Placement{At("2026-01-01T00:00:00Z"), 5, "ws-a"},
                                      Placement{At("2026-02-01T00:00:00Z"), 9, "ws-b"}}};
  return org;
}

TEST(OrgState, CostCenterFollowsTheStructureKnownWhenCharged) {
  OrgState org = TwoWorkspaces();
  EXPECT_EQ(org.CostCenterOf("p1", At("2026-01-15T00:00:00Z"), ledger::Sequence{100}).value(),
            "cc-a");
  EXPECT_EQ(org.CostCenterOf("p1", At("2026-02-15T00:00:00Z"), ledger::Sequence{100}).value(),
            "cc-b");
  // The move (sequence 9) was not yet known to a charge recorded as sequence 9.
  EXPECT_EQ(org.CostCenterOf("p1", At("2026-02-15T00:00:00Z"), ledger::Sequence{9}).value(),
            "cc-a");
}

TEST(OrgState, AnUnknownProviderIsARejectionNotAnException) {
  OrgState org = TwoWorkspaces();
  auto cc = org.CostCenterOf("nope", At("2026-01-15T00:00:00Z"), ledger::Sequence{100});
  ASSERT_FALSE(cc.ok());
  EXPECT_EQ(cc.status().code(), Code::kUnknownProvider);
}

TEST(OrgState, AProviderInAWorkspaceTheStateLacksIsCorruptionNotAnException) {
  OrgState org = TwoWorkspaces();
  org.workspaces.erase("ws-b");
  auto cc = org.CostCenterOf("p1", At("2026-02-15T00:00:00Z"), ledger::Sequence{100});
  ASSERT_FALSE(cc.ok());
  EXPECT_EQ(cc.status().code(), Code::kCorruption) << cc.status().ToString();
  org.providers["p1"].placements.clear();
  EXPECT_EQ(
      org.CostCenterOf("p1", At("2026-02-15T00:00:00Z"), ledger::Sequence{100}).status().code(),
      Code::kCorruption);
}

}  // namespace
}  // namespace billing::projections
