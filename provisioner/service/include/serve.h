// service: deployer, reconciler, usage job and `provisioner serve`, wiring every component.
// May be used by main.cpp and tests only; no component may depend on it.
//
// `provisioner serve`: the API, the reconciler and (with PROMETHEUS_URL) the usage job in one
// process, until SIGTERM or SIGINT.
#pragma once

#include <string>
#include <vector>

namespace billing::provisioner {

/// Exit status: 0 after a clean shutdown, 2 bad configuration, 1 a dependency is unavailable
/// (the store, the chart).
int Serve(const std::vector<std::string>& args, const std::string& default_chart_dir);

}  // namespace billing::provisioner
