// header_cxx.cpp -- era.h compiled as C++17 (-Wall -Wextra -Werror -pedantic): the header must
// be valid C++, give C linkage, and its types and declarations must be usable as they are.
// Compiled with -c by the tests; it also links and runs against libera.
#include "era.h"

#include <cstdint>
#include <cstdio>
#include <type_traits>

static_assert(ERA_ABI_VERSION == 1, "ABI version");
static_assert(ERA_VERSION_NUMBER == ERA_VERSION_MAJOR * 10000 + ERA_VERSION_MINOR * 100 + ERA_VERSION_PATCH,
              "version number");
static_assert(sizeof(era_bf16) == 2, "bfloat16 is 16 bits");
static_assert(std::is_standard_layout<era_bound_report>::value && std::is_trivially_copyable<era_bound_report>::value,
              "plain C struct");
static_assert(std::is_same<decltype(&era_discrete_forward_f32),
                           era_status (*)(const era_discrete_params *, int64_t, int64_t, const float *, float *)>::value,
              "era_discrete_forward_f32 signature");
static_assert(std::is_same<decltype(era_status_string(ERA_OK)), const char *>::value, "status text type");
static_assert(ERA_ERR_BAD_INDEX == 8 && ERA_ERR_OVERLAP == 9 && ERA_DISCRETE_REFERENCE == 2, "enumerator values");

int main() {
    era_discrete_params dp;
    era_discrete_params_init(&dp);
    dp.target_entropy = 1.0;
    dp.mode = ERA_DISCRETE_TIGHT;
    era_continuous_params cp;
    era_continuous_params_init(&cp);
    cp.target_entropy = -1.5;

    double c = 0.0;
    const era_status s = era_discrete_constant(&dp, 10, &c);
    const double logits[3] = {0.5, -1.0, 2.0};
    double out[3] = {0.0, 0.0, 0.0};
    const era_status t = era_continuous_forward_f64(&cp, 1, 3, logits, out);
    std::printf("libera %s (ABI %d): %s, TIGHT C(tau 4, H0 1, D 10) = %.6f; %s; unknown: %s\n", era_version_string(),
                static_cast<int>(era_abi_version()), era_status_string(s), c, era_status_string(t),
                era_status_string(static_cast<era_status>(99)));
    return (s == ERA_OK && t == ERA_OK && era_abi_version() == ERA_ABI_VERSION) ? 0 : 1;
}
