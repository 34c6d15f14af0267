// GoogleTest main for dataplane unit tests: brings up a small EAL without
// hugepages (unit tests only; benchmarks never run like this).
#include <rte_eal.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <string>
#include <vector>

#include "dataplane/log.h"
#include "dataplane/packet.h"

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  std::string prefix = "--file-prefix=tether-unit-" + std::to_string(getpid());
  std::vector<std::string> args = {"unit",
                                   "-l",
                                   "0-1",
                                   "--no-huge",
                                   "-m",
                                   "768",
                                   "--no-pci",
                                   "--no-telemetry",
                                   "--log-level=lib.*:error",
                                   prefix};
  std::vector<char*> av;
  for (auto& a : args) av.push_back(a.data());
  if (rte_eal_init(static_cast<int>(av.size()), av.data()) < 0) return 2;
  tether::dp::register_logtype();
  tether::dp::register_meta_field();
  int rc = RUN_ALL_TESTS();
  rte_eal_cleanup();
  return rc;
}
