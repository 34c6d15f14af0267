// GoogleTest main for the unit tests of modules that need DPDK (rte_hash,
// rte_ring, rte_rcu_qsbr, rte_acl): brings up a small EAL without
// hugepages on lcores 0-1 (the main lcore runs the tests; lcore 1 is there for
// tests that need a second EAL thread). Unit tests only; benchmarks never run
// like this.
#include <rte_eal.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  std::string prefix = "--file-prefix=tether-unit-eal-" + std::to_string(getpid());
  std::vector<std::string> args = {"unit-eal",
                                   "-l",
                                   "0-1",
                                   "--no-huge",
                                   "-m",
                                   "1024",
                                   "--no-pci",
                                   "--no-telemetry",
                                   "--log-level=lib.*:error",
                                   prefix};
  std::vector<char*> av;
  for (auto& a : args) av.push_back(a.data());
  if (rte_eal_init(static_cast<int>(av.size()), av.data()) < 0) return 2;
  int rc = RUN_ALL_TESTS();
  rte_eal_cleanup();
  return rc;
}
