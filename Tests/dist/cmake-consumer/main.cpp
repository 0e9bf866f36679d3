// Discrete ERA on one row of logits through the installed libera (era::era): the output's
// softmax entropy meets the target, and header and library agree on the versions.
#include <era.h>

#include <cstdio>
#include <cstring>
#include <vector>

int main() {
    if (era_abi_version() != ERA_ABI_VERSION) {
        std::fprintf(stderr, "ABI %d in the header, %d in the library\n", ERA_ABI_VERSION, era_abi_version());
        return 1;
    }
    char header_version[32];
    std::snprintf(header_version, sizeof header_version, "%d.%d.%d", ERA_VERSION_MAJOR, ERA_VERSION_MINOR,
                  ERA_VERSION_PATCH);
    if (std::strcmp(header_version, era_version_string()) != 0) {
        std::fprintf(stderr, "version %s in the header, %s in the library\n", header_version, era_version_string());
        return 1;
    }
    era_discrete_params params;
    era_discrete_params_init(&params);
    params.target_entropy = 1.0;
    std::vector<double> logits(10), out(10);
    for (int i = 0; i < 10; ++i) logits[i] = 2.0 * i;
    double entropy = 0.0;
    if (era_discrete_forward_f64(&params, 1, 10, logits.data(), out.data()) != ERA_OK ||
        era_softmax_entropy_f64(1, 10, out.data(), &entropy) != ERA_OK || entropy < 1.0 - 1e-9) {
        std::fprintf(stderr, "discrete ERA failed (entropy %g)\n", entropy);
        return 1;
    }
    std::printf("era::era %s: entropy %.4f >= 1\n", era_version_string(), entropy);
    return 0;
}
