/* A C program that uses an installed libera through pkg-config (era.pc): continuous ERA on
 * one row, whose Gaussian entropy meets the target; header and library versions agree. */
#include <era.h>

#include <stdio.h>
#include <string.h>

int main(void) {
    char header_version[32];
    snprintf(header_version, sizeof header_version, "%d.%d.%d", ERA_VERSION_MAJOR, ERA_VERSION_MINOR,
             ERA_VERSION_PATCH);
    if (era_abi_version() != ERA_ABI_VERSION || strcmp(header_version, era_version_string()) != 0) {
        fprintf(stderr, "header %s (ABI %d), library %s (ABI %d)\n", header_version, ERA_ABI_VERSION,
                era_version_string(), era_abi_version());
        return 1;
    }
    era_continuous_params params;
    era_continuous_params_init(&params);
    params.target_entropy = -2.0;
    double logits[4] = {0.5, -1.0, 2.0, 0.0}, log_std[4], entropy = 0.0;
    if (era_continuous_forward_f64(&params, 1, 4, logits, log_std) != ERA_OK ||
        era_gaussian_entropy_f64(1, 4, log_std, &entropy) != ERA_OK || entropy < -2.0 - 1e-9) {
        fprintf(stderr, "continuous ERA failed (entropy %g)\n", entropy);
        return 1;
    }
    printf("pkg-config era %s: entropy %.4f >= -2\n", era_version_string(), entropy);
    return 0;
}
