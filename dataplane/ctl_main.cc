// tether-dataplane-ctl: one dataplane API call from the shell.
//   tether-dataplane-ctl [--socket PATH] METHOD ['{"json": "params"}']
// Prints the result as JSON; exit 1 with the API's error on refusal.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "dataplane/api/client.h"
#include "dataplane/api/wire.h"

int main(int argc, char** argv) {
  CLI::App app{"Call the tether dataplane API"};
  std::string socket = tether::dpapi::kDefaultSocket, method, params = "{}";
  app.add_option("-s,--socket", socket, "API socket");
  app.add_option("method", method, "e.g. counters.get, routes.list, config.apply")->required();
  app.add_option("params", params, "JSON object of parameters");
  CLI11_PARSE(app, argc, argv);
  auto p = nlohmann::json::parse(params, nullptr, false);
  if (p.is_discarded() || !p.is_object()) {
    std::fprintf(stderr, "params must be a JSON object\n");
    return 2;
  }
  tether::dpapi::Client client;
  if (auto c = client.connect(socket, "tether-dataplane-ctl"); !c) {
    std::fprintf(stderr, "%s: %s\n", c.error->code.c_str(), c.error->message.c_str());
    return 1;
  }
  auto r = client.call(method, p);
  if (!r) {
    std::fprintf(stderr, "%s: %s\n", r.error->code.c_str(), r.error->message.c_str());
    return 1;
  }
  std::printf("%s\n", r.value.dump(2).c_str());
  return 0;
}
