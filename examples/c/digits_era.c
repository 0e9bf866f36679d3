/*
 * digits_era.c -- a digits classifier with a discrete ERA head, in C99 against libera.
 *
 * A one-hidden-layer MLP (64 -> 128 ReLU -> 10) on scikit-learn's 8x8 digits, trained with
 * minibatch Adam on the cross-entropy of its output logits, twice from the same
 * initialisation and batch order:
 *   plain:  cross-entropy on the raw logits z;
 *   ERA:    cross-entropy on z' = ERA(z) (docs/math.md §2), whose softmax has entropy
 *           >= H0 for every row whatever the network does. era_discrete_forward_f32 maps
 *           z to z'; era_discrete_backward_f32 maps dL/dz' back to dL/dz.
 * Matrix products are OpenBLAS cblas_sgemm; everything else is plain C.
 *
 * Every ERA output, of every training batch and of the test set after each epoch, goes
 * through the library's bound check (era_check_discrete_f32). The same check on the plain
 * model's logits counts its rows below H0 (there they are expected: nothing bounds them).
 *
 * Usage: digits_era [--data FILE] [--epochs N] [--seed S] [--target H0] [--tau T]
 *                   [--mode exact|tight] [--out DIR]
 * The data file comes from export_digits.py (its docstring documents the format).
 * --out DIR writes DIR/c_digits.md and DIR/c_digits.json.
 * Exit status: 0 when the ERA bound held, 1 when an ERA output row fell below H0 - tol,
 * 2 on any error (bad option, bad data file, a libera call that did not return ERA_OK).
 */
#define _POSIX_C_SOURCE 200809L

#include <cblas.h>
#include <era.h>

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

enum { HIDDEN = 128, BATCH = 64, MAX_EPOCHS = 10000 };
static const float LEARNING_RATE = 1e-3f, ADAM_BETA1 = 0.9f, ADAM_BETA2 = 0.999f, ADAM_EPS = 1e-8f;
/* Slack of the bound check: float32 outputs, entropies compared in nats (docs/math.md §5). */
static const double CHECK_TOL = 1e-5;

enum { EXIT_HELD = 0, EXIT_VIOLATED = 1, EXIT_ERROR = 2 };

/* Reports a libera status; returns 1 for ERA_OK, 0 (after printing) for anything else. */
static int era_ok(era_status status, const char *call) {
    if (status == ERA_OK) return 1;
    fprintf(stderr, "digits_era: %s: %s (era_status %d)\n", call, era_status_string(status), (int)status);
    return 0;
}

static double seconds_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---------------------------------------------------------------------------------------
 * Options
 * ------------------------------------------------------------------------------------- */

typedef struct options {
    const char *data_path;
    const char *out_dir; /* NULL: no files */
    int epochs;
    uint64_t seed;
    era_discrete_params era;
} options;

static void usage(FILE *to) {
    fprintf(to,
            "usage: digits_era [--data FILE] [--epochs N] [--seed S] [--target H0] [--tau T]\n"
            "                  [--mode exact|tight] [--out DIR]\n"
            "  --data FILE   digits file written by export_digits.py (build/digits.bin)\n"
            "  --epochs N    passes over the training set (50)\n"
            "  --seed S      initialisation and batch order (0)\n"
            "  --target H0   ERA's target entropy in nats (0.3)\n"
            "  --tau T       ERA's tau, > e (4)\n"
            "  --mode M      exact (C = exp(H0 - 1)) or tight (infimum exactly H0) (exact)\n"
            "  --out DIR     write DIR/c_digits.md and DIR/c_digits.json\n");
}

static int parse_double(const char *text, double *value) {
    char *end;
    errno = 0;
    *value = strtod(text, &end);
    return errno == 0 && end != text && *end == '\0' && isfinite(*value);
}

static int parse_options(int argc, char **argv, options *opt) {
    opt->data_path = "build/digits.bin";
    opt->out_dir = NULL;
    opt->epochs = 50;
    opt->seed = 0;
    era_discrete_params_init(&opt->era); /* tau = 4, mode EXACT, target unset */
    opt->era.target_entropy = 0.3;
    for (int i = 1; i < argc; i++) {
        const char *flag = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(flag, "--help") == 0 || strcmp(flag, "-h") == 0) {
            usage(stdout);
            exit(EXIT_HELD);
        }
        if (value == NULL) {
            fprintf(stderr, "digits_era: %s needs a value\n", flag);
            return 0;
        }
        i++;
        double number;
        char *end;
        if (strcmp(flag, "--data") == 0) {
            opt->data_path = value;
        } else if (strcmp(flag, "--out") == 0) {
            opt->out_dir = value;
        } else if (strcmp(flag, "--epochs") == 0) {
            long n = strtol(value, &end, 10);
            if (*value == '\0' || *end != '\0' || n < 1 || n > MAX_EPOCHS) goto bad_value;
            opt->epochs = (int)n;
        } else if (strcmp(flag, "--seed") == 0) {
            errno = 0;
            unsigned long long s = strtoull(value, &end, 10);
            if (*value == '\0' || *end != '\0' || errno != 0 || value[0] == '-') goto bad_value;
            opt->seed = (uint64_t)s;
        } else if (strcmp(flag, "--target") == 0) {
            if (!parse_double(value, &number)) goto bad_value;
            opt->era.target_entropy = number;
        } else if (strcmp(flag, "--tau") == 0) {
            if (!parse_double(value, &number)) goto bad_value;
            opt->era.tau = number;
        } else if (strcmp(flag, "--mode") == 0) {
            if (strcmp(value, "exact") == 0) opt->era.mode = ERA_DISCRETE_EXACT;
            else if (strcmp(value, "tight") == 0) opt->era.mode = ERA_DISCRETE_TIGHT;
            else goto bad_value;
        } else {
            fprintf(stderr, "digits_era: unknown option %s\n", flag);
            usage(stderr);
            return 0;
        }
        continue;
    bad_value:
        fprintf(stderr, "digits_era: bad value for %s: '%s'\n", flag, value);
        return 0;
    }
    return 1;
}

/* ---------------------------------------------------------------------------------------
 * The data file (format: export_digits.py)
 * ------------------------------------------------------------------------------------- */

typedef struct split {
    int64_t rows;
    float *x;   /* [rows][features], in [0, 1] */
    int64_t *y; /* [rows], in 0..classes-1 */
} split;

typedef struct digits {
    int64_t features, classes;
    split train, test;
} digits;

static uint32_t le_u32(const unsigned char *b) {
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

/* Decodes one split starting at *at; advances *at. Returns 0 on a bad value. */
static int decode_split(const unsigned char **at, int64_t rows, int64_t features, int64_t classes, split *s) {
    s->rows = rows;
    s->x = malloc((size_t)(rows * features) * sizeof *s->x);
    s->y = malloc((size_t)rows * sizeof *s->y);
    if (s->x == NULL || s->y == NULL) return 0;
    for (int64_t i = 0; i < rows * features; i++, *at += 4) {
        uint32_t bits = le_u32(*at);
        memcpy(&s->x[i], &bits, sizeof bits);
        if (!(s->x[i] >= 0.0f && s->x[i] <= 1.0f)) return 0;
    }
    for (int64_t i = 0; i < rows; i++, (*at)++) {
        s->y[i] = **at;
        if (s->y[i] >= classes) return 0;
    }
    return 1;
}

static int load_digits(const char *path, digits *d) {
    static const char magic[8] = {'E', 'R', 'A', 'D', 'I', 'G', 'T', '1'};
    enum { HEADER = 24, MAX_ROWS = 1 << 24, MAX_FEATURES = 1 << 16 };
    unsigned char *bytes = NULL;
    int ok = 0;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "digits_era: cannot open %s: %s (make data writes it)\n", path, strerror(errno));
        return 0;
    }
    long size = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (size >= HEADER && fseek(f, 0, SEEK_SET) == 0 && (bytes = malloc((size_t)size)) != NULL &&
        fread(bytes, 1, (size_t)size, f) == (size_t)size && memcmp(bytes, magic, sizeof magic) == 0) {
        uint32_t n_train = le_u32(bytes + 8), n_test = le_u32(bytes + 12);
        uint32_t features = le_u32(bytes + 16), classes = le_u32(bytes + 20);
        int64_t expected = HEADER + ((int64_t)n_train + n_test) * (4 * (int64_t)features + 1);
        const unsigned char *at = bytes + HEADER;
        d->features = features;
        d->classes = classes;
        ok = n_train >= 1 && n_test >= 1 && n_train <= MAX_ROWS && n_test <= MAX_ROWS && features >= 1 &&
             features <= MAX_FEATURES && classes >= 2 && classes <= 255 && expected == size &&
             decode_split(&at, n_train, features, classes, &d->train) &&
             decode_split(&at, n_test, features, classes, &d->test);
    }
    if (!ok) fprintf(stderr, "digits_era: %s is not a valid digits file (see export_digits.py)\n", path);
    free(bytes);
    fclose(f);
    return ok;
}

static void free_digits(digits *d) {
    free(d->train.x);
    free(d->train.y);
    free(d->test.x);
    free(d->test.y);
}

/* ---------------------------------------------------------------------------------------
 * Random numbers: splitmix64, so that a seed means the same run everywhere
 * ------------------------------------------------------------------------------------- */

static uint64_t rng_next(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* Uniform on [lo, hi). */
static float rng_uniform(uint64_t *state, float lo, float hi) {
    double u = (double)(rng_next(state) >> 11) * 0x1.0p-53;
    return (float)(lo + (hi - lo) * u);
}

/* Fisher-Yates; the modulo bias (n / 2^64) is negligible here. */
static void rng_shuffle(uint64_t *state, int64_t *index, int64_t n) {
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(rng_next(state) % (uint64_t)(i + 1));
        int64_t t = index[i];
        index[i] = index[j];
        index[j] = t;
    }
}

/* ---------------------------------------------------------------------------------------
 * The model: z = relu(x W1 + b1) W2 + b2, all parameters in one flat array for Adam
 * ------------------------------------------------------------------------------------- */

typedef struct mlp {
    int64_t inputs, hidden, classes, size;
    float *param, *grad, *adam_m, *adam_v; /* [size] each */
    float *w1, *b1, *w2, *b2;              /* views into param: [inputs][hidden], [hidden], ... */
    float *dw1, *db1, *dw2, *db2;          /* the same views into grad */
    int64_t steps;
} mlp;

/* PyTorch's nn.Linear initialisation: weights and biases uniform in +-1/sqrt(fan_in). */
static int mlp_init(mlp *m, int64_t inputs, int64_t hidden, int64_t classes, uint64_t seed) {
    m->inputs = inputs;
    m->hidden = hidden;
    m->classes = classes;
    m->size = inputs * hidden + hidden + hidden * classes + classes;
    m->param = calloc((size_t)m->size, sizeof(float));
    m->grad = calloc((size_t)m->size, sizeof(float));
    m->adam_m = calloc((size_t)m->size, sizeof(float));
    m->adam_v = calloc((size_t)m->size, sizeof(float));
    if (!m->param || !m->grad || !m->adam_m || !m->adam_v) return 0;
    m->w1 = m->param;
    m->b1 = m->w1 + inputs * hidden;
    m->w2 = m->b1 + hidden;
    m->b2 = m->w2 + hidden * classes;
    m->dw1 = m->grad;
    m->db1 = m->dw1 + inputs * hidden;
    m->dw2 = m->db1 + hidden;
    m->db2 = m->dw2 + hidden * classes;
    m->steps = 0;
    uint64_t state = seed;
    float bound1 = 1.0f / sqrtf((float)inputs), bound2 = 1.0f / sqrtf((float)hidden);
    for (float *p = m->w1; p < m->w2; p++) *p = rng_uniform(&state, -bound1, bound1); /* w1, b1 */
    for (float *p = m->w2; p < m->param + m->size; p++) *p = rng_uniform(&state, -bound2, bound2); /* w2, b2 */
    return 1;
}

static void mlp_free(mlp *m) {
    free(m->param);
    free(m->grad);
    free(m->adam_m);
    free(m->adam_v);
}

/* Activations of up to max_rows rows. */
typedef struct workspace {
    float *x;         /* [rows][inputs]   the batch */
    int64_t *y;       /* [rows]           its labels */
    float *h;         /* [rows][hidden]   relu(x W1 + b1) */
    float *z;         /* [rows][classes]  raw logits */
    float *out;       /* [rows][classes]  the logits the loss sees: ERA(z), or z */
    float *grad_out;  /* [rows][classes]  dL/dout */
    float *grad_z;    /* [rows][classes]  dL/dz */
    float *grad_h;    /* [rows][hidden]   dL/dh */
    float *entropy;   /* [rows]           entropy of softmax(out) */
} workspace;

static int workspace_init(workspace *w, int64_t max_rows, const mlp *m) {
    w->x = malloc((size_t)(max_rows * m->inputs) * sizeof(float));
    w->y = malloc((size_t)max_rows * sizeof(int64_t));
    w->h = malloc((size_t)(max_rows * m->hidden) * sizeof(float));
    w->grad_h = malloc((size_t)(max_rows * m->hidden) * sizeof(float));
    w->z = malloc((size_t)(max_rows * m->classes) * sizeof(float));
    w->out = malloc((size_t)(max_rows * m->classes) * sizeof(float));
    w->grad_out = malloc((size_t)(max_rows * m->classes) * sizeof(float));
    w->grad_z = malloc((size_t)(max_rows * m->classes) * sizeof(float));
    w->entropy = malloc((size_t)max_rows * sizeof(float));
    return w->x && w->y && w->h && w->grad_h && w->z && w->out && w->grad_out && w->grad_z && w->entropy;
}

static void workspace_free(workspace *w) {
    free(w->x);
    free(w->y);
    free(w->h);
    free(w->grad_h);
    free(w->z);
    free(w->out);
    free(w->grad_out);
    free(w->grad_z);
    free(w->entropy);
}

/* w->out = the head's logits for the rows rows of w->x; era == NULL: the plain model. */
static int forward(const mlp *m, const era_discrete_params *era, int64_t rows, workspace *w) {
    const int H = (int)m->hidden, C = (int)m->classes, F = (int)m->inputs, n = (int)rows;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, H, F, 1.0f, w->x, F, m->w1, H, 0.0f, w->h, H);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < H; j++) {
            float v = w->h[r * H + j] + m->b1[j];
            w->h[r * H + j] = v > 0.0f ? v : 0.0f;
        }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, C, H, 1.0f, w->h, H, m->w2, C, 0.0f, w->z, C);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < C; j++) w->z[r * C + j] += m->b2[j];
    if (era == NULL) {
        memcpy(w->out, w->z, (size_t)(rows * C) * sizeof(float));
        return 1;
    }
    /* z' = log h^-1(a softmax(z) + b): softmax(z') has entropy >= H0 (docs/math.md §2) */
    return era_ok(era_discrete_forward_f32(era, rows, C, w->z, w->out), "era_discrete_forward_f32");
}

/* Mean cross-entropy of softmax(w->out) against w->y; with grad, also w->grad_out = dL/dout. */
static double cross_entropy(int64_t rows, int64_t classes, workspace *w, int grad) {
    double total = 0.0;
    for (int64_t r = 0; r < rows; r++) {
        const float *o = w->out + r * classes;
        float top = o[0];
        for (int64_t j = 1; j < classes; j++) top = o[j] > top ? o[j] : top;
        double sum = 0.0;
        for (int64_t j = 0; j < classes; j++) sum += exp((double)(o[j] - top));
        double log_sum = log(sum) + top;
        total += log_sum - o[w->y[r]];
        if (grad)
            for (int64_t j = 0; j < classes; j++)
                w->grad_out[r * classes + j] =
                    (float)((exp((double)o[j] - log_sum) - (j == w->y[r] ? 1.0 : 0.0)) / (double)rows);
    }
    return total / (double)rows;
}

/* From w->grad_out to m->grad, through ERA's vector-Jacobian product when era != NULL. */
static int backward(mlp *m, const era_discrete_params *era, int64_t rows, workspace *w) {
    const int H = (int)m->hidden, C = (int)m->classes, F = (int)m->inputs, n = (int)rows;
    if (era == NULL) {
        memcpy(w->grad_z, w->grad_out, (size_t)(rows * C) * sizeof(float));
    } else if (!era_ok(era_discrete_backward_f32(era, rows, C, w->z, w->grad_out, w->grad_z),
                       "era_discrete_backward_f32")) {
        return 0;
    }
    /* dW2 = h^T grad_z, db2 = column sums of grad_z, grad_h = grad_z W2^T masked by relu */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, H, C, n, 1.0f, w->h, H, w->grad_z, C, 0.0f, m->dw2, C);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, H, C, 1.0f, w->grad_z, C, m->w2, C, 0.0f, w->grad_h, H);
    for (int64_t j = 0; j < C; j++) m->db2[j] = 0.0f;
    for (int64_t j = 0; j < H; j++) m->db1[j] = 0.0f;
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t j = 0; j < C; j++) m->db2[j] += w->grad_z[r * C + j];
        for (int64_t j = 0; j < H; j++) {
            if (w->h[r * H + j] <= 0.0f) w->grad_h[r * H + j] = 0.0f;
            m->db1[j] += w->grad_h[r * H + j];
        }
    }
    /* dW1 = x^T grad_h */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, F, H, n, 1.0f, w->x, F, w->grad_h, H, 0.0f, m->dw1, H);
    return 1;
}

static void adam_step(mlp *m) {
    m->steps++;
    float correction1 = 1.0f - powf(ADAM_BETA1, (float)m->steps);
    float correction2 = 1.0f - powf(ADAM_BETA2, (float)m->steps);
    for (int64_t i = 0; i < m->size; i++) {
        float g = m->grad[i];
        m->adam_m[i] = ADAM_BETA1 * m->adam_m[i] + (1.0f - ADAM_BETA1) * g;
        m->adam_v[i] = ADAM_BETA2 * m->adam_v[i] + (1.0f - ADAM_BETA2) * g * g;
        float m_hat = m->adam_m[i] / correction1, v_hat = m->adam_v[i] / correction2;
        m->param[i] -= LEARNING_RATE * m_hat / (sqrtf(v_hat) + ADAM_EPS);
    }
}

/* ---------------------------------------------------------------------------------------
 * Entropy bookkeeping: era_check_discrete_f32 on every output the model produced
 * ------------------------------------------------------------------------------------- */

typedef struct entropy_tally {
    int64_t rows, below_target; /* rows checked, rows whose entropy < H0 - tol */
    double min_entropy;         /* smallest row entropy seen (nats) */
} entropy_tally;

static void tally_add(entropy_tally *tally, const era_bound_report *report) {
    tally->rows += report->rows;
    tally->below_target += report->violations;
    if (report->min_entropy < tally->min_entropy) tally->min_entropy = report->min_entropy;
}

/* Checks rows of output logits against H0 and adds them to the tallies part and all. */
static int check_rows(const era_discrete_params *era, int64_t rows, int64_t classes, const float *logits,
                      entropy_tally *part, entropy_tally *all, era_bound_report *report) {
    if (!era_ok(era_check_discrete_f32(era, rows, classes, logits, CHECK_TOL, report), "era_check_discrete_f32"))
        return 0;
    tally_add(part, report);
    tally_add(all, report);
    return 1;
}

/* ---------------------------------------------------------------------------------------
 * One training run
 * ------------------------------------------------------------------------------------- */

typedef struct run_result {
    const char *name;
    int use_era;
    double *train_loss, *test_accuracy, *test_min_entropy; /* [epochs] */
    double test_nll, test_mean_entropy;                       /* after the last epoch */
    entropy_tally train, test, all; /* train batches, test sets after each epoch, both */
    double seconds;
} run_result;

/* Test accuracy, NLL and entropies of the current model; adds the test rows to the tallies. */
static int evaluate(const mlp *m, const era_discrete_params *check, const era_discrete_params *era,
                    const digits *d, workspace *w, run_result *res, int epoch) {
    const int64_t rows = d->test.rows, C = d->classes;
    memcpy(w->x, d->test.x, (size_t)(rows * d->features) * sizeof(float));
    memcpy(w->y, d->test.y, (size_t)rows * sizeof(int64_t));
    if (!forward(m, era, rows, w)) return 0;
    int64_t correct = 0;
    for (int64_t r = 0; r < rows; r++) {
        int64_t best = 0;
        for (int64_t j = 1; j < C; j++)
            if (w->out[r * C + j] > w->out[r * C + best]) best = j;
        correct += best == w->y[r];
    }
    era_bound_report report;
    if (!check_rows(check, rows, C, w->out, &res->test, &res->all, &report)) return 0;
    res->test_accuracy[epoch] = (double)correct / (double)rows;
    res->test_min_entropy[epoch] = report.min_entropy;
    res->test_mean_entropy = report.mean_entropy;
    res->test_nll = cross_entropy(rows, C, w, 0);
    return 1;
}

static int train(const options *opt, const digits *d, double floor, run_result *res) {
    const era_discrete_params *era = res->use_era ? &opt->era : NULL;
    const int64_t F = d->features, n_train = d->train.rows;
    const int64_t max_rows = d->test.rows > BATCH ? d->test.rows : BATCH;
    mlp m;
    workspace w;
    memset(&m, 0, sizeof m);
    memset(&w, 0, sizeof w);
    int64_t *order = malloc((size_t)n_train * sizeof *order);
    int ok = order != NULL && mlp_init(&m, F, HIDDEN, d->classes, opt->seed) && workspace_init(&w, max_rows, &m);
    if (!ok) fprintf(stderr, "digits_era: out of memory\n");
    for (int64_t i = 0; ok && i < n_train; i++) order[i] = i;
    uint64_t batch_rng = opt->seed ^ 0x5eed0bad5eed0badu; /* the same batch order with and without ERA */
    res->train.min_entropy = res->test.min_entropy = res->all.min_entropy = INFINITY;
    double start = seconds_now();
    printf("== %s\n", res->name);
    for (int epoch = 0; ok && epoch < opt->epochs; epoch++) {
        rng_shuffle(&batch_rng, order, n_train);
        double loss_sum = 0.0;
        int64_t batches = 0;
        for (int64_t first = 0; ok && first < n_train; first += BATCH, batches++) {
            int64_t rows = n_train - first < BATCH ? n_train - first : BATCH;
            for (int64_t r = 0; r < rows; r++) {
                memcpy(w.x + r * F, d->train.x + order[first + r] * F, (size_t)F * sizeof(float));
                w.y[r] = d->train.y[order[first + r]];
            }
            era_bound_report report;
            ok = forward(&m, era, rows, &w) &&
                 check_rows(&opt->era, rows, d->classes, w.out, &res->train, &res->all, &report);
            if (!ok) break;
            loss_sum += cross_entropy(rows, d->classes, &w, 1);
            ok = backward(&m, era, rows, &w);
            if (ok) adam_step(&m);
        }
        if (!ok || !evaluate(&m, &opt->era, era, d, &w, res, epoch)) {
            ok = 0;
            break;
        }
        res->train_loss[epoch] = loss_sum / (double)batches;
        printf("epoch %3d  train loss %.4f  test acc %6.2f%%  test entropy min %.4f mean %.4f  ", epoch + 1,
               res->train_loss[epoch], 100.0 * res->test_accuracy[epoch], res->test_min_entropy[epoch],
               res->test_mean_entropy);
        if (era != NULL) printf("floor %.4f  violations %lld\n", floor, (long long)res->all.below_target);
        else printf("(no floor) rows below H0 %lld\n", (long long)res->all.below_target);
    }
    res->seconds = seconds_now() - start;
    free(order);
    workspace_free(&w);
    mlp_free(&m);
    return ok;
}

/* ---------------------------------------------------------------------------------------
 * Reports
 * ------------------------------------------------------------------------------------- */

static const char *mode_name(int32_t mode) { return mode == ERA_DISCRETE_TIGHT ? "tight" : "exact"; }

static void json_array(FILE *f, const double *values, int n) {
    fputc('[', f);
    for (int i = 0; i < n; i++) fprintf(f, "%s%.6g", i ? ", " : "", values[i]);
    fputc(']', f);
}

static void json_run(FILE *f, const run_result *r, int epochs) {
    fprintf(f, "    {\"name\": \"%s\", \"era\": %s,\n", r->name, r->use_era ? "true" : "false");
    fprintf(f, "     \"test_accuracy\": %.6g, \"test_nll\": %.6g, \"test_min_entropy\": %.9g, "
               "\"test_mean_entropy\": %.9g,\n",
            r->test_accuracy[epochs - 1], r->test_nll, r->test_min_entropy[epochs - 1], r->test_mean_entropy);
    fprintf(f, "     \"min_entropy_seen\": %.9g, \"rows_checked\": %lld, \"rows_below_target\": %lld, "
               "\"train_batch_rows\": %lld, \"test_rows\": %lld, \"seconds\": %.3f,\n",
            r->all.min_entropy, (long long)r->all.rows, (long long)r->all.below_target, (long long)r->train.rows,
            (long long)r->test.rows, r->seconds);
    fprintf(f, "     \"per_epoch\": {\"train_loss\": ");
    json_array(f, r->train_loss, epochs);
    fprintf(f, ", \"test_accuracy\": ");
    json_array(f, r->test_accuracy, epochs);
    fprintf(f, ", \"test_min_entropy\": ");
    json_array(f, r->test_min_entropy, epochs);
    fprintf(f, "}}");
}

static int write_reports(const options *opt, const digits *d, double floor, double infimum,
                         const run_result runs[2]) {
    if (mkdir(opt->out_dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "digits_era: cannot create %s: %s\n", opt->out_dir, strerror(errno));
        return 0;
    }
    const int E = opt->epochs;
    size_t length = strlen(opt->out_dir) + 32;
    char *path = malloc(length);
    if (path == NULL) return 0;

    snprintf(path, length, "%s/c_digits.md", opt->out_dir);
    FILE *md = fopen(path, "w");
    if (md == NULL) goto io_error;
    fprintf(md, "### C: digits with a discrete ERA head (libera %s, `examples/c/digits_era.c`)\n\n",
            era_version_string());
    fprintf(md,
            "MLP %lld-%d-%lld (ReLU) trained with Adam (lr %g, batch %d) for %d epochs, seed %llu, on %lld digits; "
            "tested on %lld. ERA mode %s, H0 = %g nats, tau = %g: guaranteed floor %.4f nats, one-hot infimum "
            "%.4f nats. Entropies are of the softmax of the logits the loss sees, from `era_check_discrete_f32` "
            "(tol %g) over every training batch and the test set after every epoch.\n\n",
            (long long)d->features, HIDDEN, (long long)d->classes, (double)LEARNING_RATE, BATCH, E,
            (unsigned long long)opt->seed, (long long)d->train.rows, (long long)d->test.rows,
            mode_name(opt->era.mode), opt->era.target_entropy, opt->era.tau, floor, infimum, CHECK_TOL);
    fprintf(md, "| model | test accuracy | test NLL | min test entropy | mean test entropy | "
                "min entropy seen | rows below H0 |\n|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < 2; i++)
        fprintf(md, "| %s | %.2f %% | %.4f | %.4f | %.4f | %.4f | %lld of %lld |\n", runs[i].name,
                100.0 * runs[i].test_accuracy[E - 1], runs[i].test_nll, runs[i].test_min_entropy[E - 1],
                runs[i].test_mean_entropy, runs[i].all.min_entropy, (long long)runs[i].all.below_target,
                (long long)runs[i].all.rows);
    fprintf(md, "\nEntropies in nats. The ERA row's count of rows below H0 is the bound check's violation "
                "count (0 expected); the plain model has no bound.\n");
    if (fclose(md) != 0) goto io_error;

    snprintf(path, length, "%s/c_digits.json", opt->out_dir);
    FILE *js = fopen(path, "w");
    if (js == NULL) goto io_error;
    fprintf(js, "{\n  \"example\": \"c_digits\", \"libera_version\": \"%s\",\n", era_version_string());
    fprintf(js, "  \"data\": {\"train\": %lld, \"test\": %lld, \"features\": %lld, \"classes\": %lld},\n",
            (long long)d->train.rows, (long long)d->test.rows, (long long)d->features, (long long)d->classes);
    fprintf(js, "  \"config\": {\"epochs\": %d, \"seed\": %llu, \"hidden\": %d, \"batch\": %d, \"lr\": %g, "
                "\"target_entropy\": %.17g, \"tau\": %.17g, \"mode\": \"%s\", \"check_tol\": %g},\n",
            E, (unsigned long long)opt->seed, HIDDEN, BATCH, (double)LEARNING_RATE, opt->era.target_entropy,
            opt->era.tau, mode_name(opt->era.mode), CHECK_TOL);
    fprintf(js, "  \"floor\": %.17g, \"infimum\": %.17g, \"violations\": %lld,\n  \"runs\": [\n", floor, infimum,
            (long long)runs[1].all.below_target);
    json_run(js, &runs[0], E);
    fprintf(js, ",\n");
    json_run(js, &runs[1], E);
    fprintf(js, "\n  ]\n}\n");
    if (fclose(js) != 0) goto io_error;
    printf("wrote %s/c_digits.md and %s/c_digits.json\n", opt->out_dir, opt->out_dir);
    free(path);
    return 1;
io_error:
    fprintf(stderr, "digits_era: cannot write %s: %s\n", path, strerror(errno));
    free(path);
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * main
 * ------------------------------------------------------------------------------------- */

int main(int argc, char **argv) {
    options opt;
    if (!parse_options(argc, argv, &opt)) return EXIT_ERROR;
    if (era_abi_version() != ERA_ABI_VERSION) {
        fprintf(stderr, "digits_era: built against ABI %d, libera.so has ABI %d\n", ERA_ABI_VERSION,
                (int)era_abi_version());
        return EXIT_ERROR;
    }
    openblas_set_num_threads(1); /* tiny matrices: one thread is fastest, and results do not depend on cores */

    digits d;
    memset(&d, 0, sizeof d);
    if (!load_digits(opt.data_path, &d)) {
        free_digits(&d);
        return EXIT_ERROR;
    }
    /* The parameters are checked once here (an infeasible H0 for this tau is refused). */
    double floor, infimum;
    if (!era_ok(era_discrete_floor(&opt.era, d.classes, &floor), "era_discrete_floor") ||
        !era_ok(era_discrete_infimum(&opt.era, d.classes, &infimum), "era_discrete_infimum")) {
        free_digits(&d);
        return EXIT_ERROR;
    }
    printf("libera %s; digits: %lld train / %lld test, %lld features, %lld classes\n", era_version_string(),
           (long long)d.train.rows, (long long)d.test.rows, (long long)d.features, (long long)d.classes);
    printf("ERA mode %s, target H0 %.4f nats, tau %g: guaranteed floor %.4f nats (era_discrete_floor), "
           "one-hot infimum %.4f nats\n",
           mode_name(opt.era.mode), opt.era.target_entropy, opt.era.tau, floor, infimum);

    run_result runs[2] = {{.name = "plain softmax", .use_era = 0}, {.name = "ERA head", .use_era = 1}};
    int ok = 1;
    for (int i = 0; i < 2; i++) {
        runs[i].train_loss = calloc((size_t)opt.epochs, sizeof(double));
        runs[i].test_accuracy = calloc((size_t)opt.epochs, sizeof(double));
        runs[i].test_min_entropy = calloc((size_t)opt.epochs, sizeof(double));
        if (!runs[i].train_loss || !runs[i].test_accuracy || !runs[i].test_min_entropy) ok = 0;
    }
    for (int i = 0; ok && i < 2; i++) ok = train(&opt, &d, floor, &runs[i]);

    int status = EXIT_ERROR;
    if (ok) {
        const run_result *plain = &runs[0], *with_era = &runs[1];
        printf("== summary (era_check_discrete_f32, tol %g, over every training batch and the test set after "
               "every epoch)\n",
               CHECK_TOL);
        printf("%-14s %9s %9s %12s %12s %16s %16s %8s\n", "model", "test acc", "test NLL", "min test H",
               "mean test H", "min H seen", "rows below H0", "time");
        for (int i = 0; i < 2; i++)
            printf("%-14s %8.2f%% %9.4f %12.4f %12.4f %16.4f %7lld of %6lld %7.2fs\n", runs[i].name,
                   100.0 * runs[i].test_accuracy[opt.epochs - 1], runs[i].test_nll, runs[i].test_min_entropy[opt.epochs - 1],
                   runs[i].test_mean_entropy, runs[i].all.min_entropy, (long long)runs[i].all.below_target,
                   (long long)runs[i].all.rows, runs[i].seconds);
        printf("plain softmax: %lld of %lld rows below H0 = %.4f nats (nothing bounds them)\n",
               (long long)plain->all.below_target, (long long)plain->all.rows, opt.era.target_entropy);
        printf("ERA head: test accuracy %.2f%%, minimum entropy seen %.6f nats vs target %.6f, violations %lld "
               "-> %s\n",
               100.0 * with_era->test_accuracy[opt.epochs - 1], with_era->all.min_entropy, opt.era.target_entropy,
               (long long)with_era->all.below_target, with_era->all.below_target ? "BOUND VIOLATED" : "bound held");
        status = with_era->all.below_target ? EXIT_VIOLATED : EXIT_HELD;
        if (opt.out_dir != NULL && !write_reports(&opt, &d, floor, infimum, runs)) status = EXIT_ERROR;
    }
    for (int i = 0; i < 2; i++) {
        free(runs[i].train_loss);
        free(runs[i].test_accuracy);
        free(runs[i].test_min_entropy);
    }
    free_digits(&d);
    return status;
}
