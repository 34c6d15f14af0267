// GoogleTest main for the firewall tests that need DPDK (rte_acl allocates with
// rte_malloc): brings up a small EAL without
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
  std::string prefix = "--file-prefix=tether-fw-" + std::to_string(getpid());
  std::vector<std::string> args = {"fw-unit",
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
