/*
 * microfeatures.c - edgehost "pre" plugin in C: the microWakeWord audio feature front end
 * (TFLite Micro's microfrontend, compiled from the pymicro-features 2.0.2 sdist that
 * `make deps` fetches), as pymicro-wakeword runs it, for streaming wake-word models.
 *
 * Input: a sequence (ABI 1.3, §5.8) of 10 ms chunks of 16 kHz mono signed 16-bit
 * little-endian PCM, 320 bytes each. Every chunk gives one 40-channel feature frame once the
 * 30 ms window has filled (none for the first two chunks); the model's input holds `stride`
 * frames (okay_nabu: [1, 3, 40] int8), so the model runs on every third frame and the
 * plugin sets FLAG_SKIP_MODEL for the other chunks. Features are quantised exactly as
 * pymicro-wakeword does: round-half-even(value * 0.0390625 / scale + zero_point), cast
 * to int8 by two's-complement wrap (numpy's astype).
 *
 * Request context to the post plugin (text): "CHUNK FEATURE INFERRED" then, when FEATURE
 * is 1, the 40 quantised values of this chunk's frame, separated by spaces.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "edgehost.h"
#include "tensorflow/lite/experimental/microfrontend/lib/frontend.h"
#include "tensorflow/lite/experimental/microfrontend/lib/frontend_util.h"

#define SAMPLE_RATE 16000
#define CHUNK_SAMPLES 160 /* 10 ms */
#define CHANNELS 40
#define MAX_STRIDE 16
#define FLOAT32_SCALE 0.0390625f /* pymicro-features: feature = value * this */

static struct FrontendConfig g_cfg;
static struct FrontendState g_st;
static int8_t g_frames[MAX_STRIDE][CHANNELS];
static int g_nframes;
static unsigned g_chunk;
static char g_ctx[16 + CHANNELS * 5];

int eh_plugin_init(const char *params, size_t len) {
    (void)params;
    (void)len;
    /* pymicro-features' settings (src/micro_features.cpp, init_cfg). */
    g_cfg.window.size_ms = 30;
    g_cfg.window.step_size_ms = 10;
    g_cfg.filterbank.num_channels = CHANNELS;
    g_cfg.filterbank.lower_band_limit = 125.0f;
    g_cfg.filterbank.upper_band_limit = 7500.0f;
    g_cfg.noise_reduction.smoothing_bits = 10;
    g_cfg.noise_reduction.even_smoothing = 0.025f;
    g_cfg.noise_reduction.odd_smoothing = 0.06f;
    g_cfg.noise_reduction.min_signal_remaining = 0.05f;
    g_cfg.pcan_gain_control.enable_pcan = 1;
    g_cfg.pcan_gain_control.strength = 0.95f;
    g_cfg.pcan_gain_control.offset = 80.0f;
    g_cfg.pcan_gain_control.gain_bits = 21;
    g_cfg.log_scale.enable_log = 1;
    g_cfg.log_scale.scale_shift = 6;
    if (!FrontendPopulateState(&g_cfg, &g_st, SAMPLE_RATE))
        return eh_fail(EH_INTERNAL, "microfeatures-c: could not set up the front end (out of memory?)");
    return EH_OK;
}

/* numpy: np.round (half to even) then astype(int8) (wraps). */
static int8_t quantize(uint16_t v, float scale, int32_t zp) {
    double f = (double)((float)v * FLOAT32_SCALE);
    double x = nearbyint(f / (double)scale + (double)zp);
    int32_t q = (int32_t)x;
    return (int8_t)(uint8_t)(q & 0xff);
}

int eh_plugin_pre(eh_call *c) {
    if (!(c->flags & EH_FLAG_SEQUENCE))
        return eh_fail(EH_BAD_INPUT, "microfeatures-c: send the audio as a sequence of 10 ms chunks "
                                     "(sequence_id, sequence_start on the first, sequence_end on the last)");
    eh_tensor *t = eh_call_tensor(c, 0);
    size_t n = t ? eh_tensor_count(t) : 0;
    if (!t || eh_tensor_dtype(t) != EH_INT8 || eh_tensor_ndims(t) != 3 || eh_tensor_dim(t, 2) != CHANNELS ||
        eh_tensor_dim(t, 0) != 1 || eh_tensor_dim(t, 1) < 1 || eh_tensor_dim(t, 1) > MAX_STRIDE || n == 0)
        return eh_fail(EH_INTERNAL, "microfeatures-c: the model input must be int8 [1, stride, 40]");
    int stride = eh_tensor_dim(t, 1);
    if (c->flags & EH_FLAG_SEQ_START) { /* fresh instances anyway; reset for clarity */
        FrontendReset(&g_st);
        g_nframes = 0;
        g_chunk = 0;
    }
    if (eh_call_input_len(c) != CHUNK_SAMPLES * 2)
        return eh_fail(EH_BAD_INPUT, "microfeatures-c: a chunk is 10 ms of 16 kHz mono s16le audio, 320 bytes; got %zu",
                       eh_call_input_len(c));
    int16_t samples[CHUNK_SAMPLES];
    memcpy(samples, eh_call_input(c), sizeof samples);
    size_t read = 0;
    struct FrontendOutput fo = FrontendProcessSamples(&g_st, samples, CHUNK_SAMPLES, &read);
    g_chunk++;
    int feature = fo.size == CHANNELS, inferred = 0;
    if (fo.size != 0 && fo.size != CHANNELS)
        return eh_fail(EH_INTERNAL, "microfeatures-c: front end gave %zu values", fo.size);
    if (feature) {
        for (int i = 0; i < CHANNELS; i++)
            g_frames[g_nframes][i] = quantize(fo.values[i], eh_tensor_scale(t), eh_tensor_zero_point(t));
        g_nframes++;
        if (g_nframes == stride) {
            memcpy(eh_tensor_data(t), g_frames, (size_t)stride * CHANNELS);
            g_nframes = 0;
            inferred = 1;
        }
    }
    if (!inferred) c->flags |= EH_FLAG_SKIP_MODEL;
    int k = snprintf(g_ctx, sizeof g_ctx, "%u %d %d", g_chunk, feature, inferred);
    if (feature) {
        const int8_t *last = g_frames[inferred ? stride - 1 : g_nframes - 1];
        for (int i = 0; i < CHANNELS; i++) k += snprintf(g_ctx + k, sizeof g_ctx - (size_t)k, " %d", last[i]);
    }
    return eh_set_context(c, g_ctx, (size_t)k);
}

EH_EXPORT_PRE
