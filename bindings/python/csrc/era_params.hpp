// Parameter structs of include/era.h built from plain values, shared by the two Python
// extension modules (era._era over numpy, era._era_xla for XLA's FFI). Each starts from the
// library's *_params_init defaults, so a field added to a struct keeps its default here.
#pragma once

#include <cstdint>

extern "C" {
#include "era.h"
}

namespace era_py {

inline era_continuous_params continuous_params(double target, double residual, double log_std_min,
                                               double log_std_max) {
    era_continuous_params p;
    era_continuous_params_init(&p);
    p.target_entropy = target;
    p.residual = residual;
    p.log_std_min = log_std_min;
    p.log_std_max = log_std_max;
    return p;
}

inline era_discrete_params discrete_params(double target, double tau, int32_t mode) {
    era_discrete_params p;
    era_discrete_params_init(&p);
    p.target_entropy = target;
    p.tau = tau;
    p.mode = mode;
    return p;
}

inline era_llm_params llm_params(double omega_low, double omega_high, double k, double top_fraction,
                                 bool scale_advantages) {
    era_llm_params p;
    era_llm_params_init(&p);
    p.omega_low = omega_low;
    p.omega_high = omega_high;
    p.k = k;
    p.top_fraction = top_fraction;
    p.scale_advantages = scale_advantages ? 1 : 0;
    return p;
}

}  // namespace era_py
