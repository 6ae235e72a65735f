/*
 * cascade_hostile.c - a kind "both" test plugin for the model-call guarantees (ABI §5.9).
 * Its pre fills the model's inputs with zeros; its post, by params "mode":
 *   "ok"        runs "mobilenet" once (granted) and answers {"ok":true}
 *   "ungranted" runs "ssd" (the config grants only mobilenet)
 *   "fanout"    runs "mobilenet" 10,000 times in a loop, ignoring failures (max_model_calls stops it)
 *   "forever"   runs "mobilenet" until a call fails (the request's deadline ends it)
 *   "badbuf"    passes a buffer one byte short
 * and answers {"ok":true,"calls":N,"last":status} if it gets that far.
 */
#include <string.h>

#include "edgehost.h"

static char g_mode[16] = "ok";
static eh_model g_m;
static eh_buf g_out;

int eh_plugin_init(const char *p, size_t n) {
    eh_json v;
    if (eh_json_get(p, n, "mode", &v) == 1) {
        size_t l;
        char *s = eh_json_string_dup(&v, &l);
        if (!s || l >= sizeof g_mode) return eh_fail(EH_BAD_PARAMS, "mode");
        memcpy(g_mode, s, l + 1);
    }
    return eh_model_open(&g_m, "mobilenet") == EH_OK ? EH_OK : EH_BAD_PARAMS;
}

int eh_plugin_pre(eh_call *call) {
    for (size_t i = 0; i < eh_call_ntensors(call); i++) {
        eh_tensor *t = eh_call_tensor(call, i);
        memset(eh_tensor_data(t), 0, eh_tensor_bytes(t));
    }
    return EH_OK;
}

int eh_plugin_post(eh_call *call) {
    int32_t last = 0;
    long calls = 0;
    if (strcmp(g_mode, "ungranted") == 0) {
        last = eh_host_run_model("ssd", 3, g_m.bufs, (uint32_t)(g_m.n_in + g_m.n_out));
        calls = 1;
    } else if (strcmp(g_mode, "fanout") == 0) {
        for (; calls < 10000; calls++) last = eh_host_run_model("mobilenet", 9, g_m.bufs, (uint32_t)(g_m.n_in + g_m.n_out));
    } else if (strcmp(g_mode, "forever") == 0) {
        for (; last == 0 && calls < 1000000; calls++)
            last = eh_host_run_model("mobilenet", 9, g_m.bufs, (uint32_t)(g_m.n_in + g_m.n_out));
    } else if (strcmp(g_mode, "badbuf") == 0) {
        uint32_t bufs[2 * EH_MODEL_MAX_TENSORS];
        memcpy(bufs, g_m.bufs, sizeof bufs);
        bufs[1]--;
        last = eh_host_run_model("mobilenet", 9, bufs, (uint32_t)(g_m.n_in + g_m.n_out));
        calls = 1;
    } else {
        last = eh_model_run(&g_m);
        calls = 1;
    }
    eh_buf_reset(&g_out);
    eh_buf_printf(&g_out, "{\"ok\":true,\"calls\":%ld,\"last\":%d}", calls, (int)last);
    eh_set_output(call, g_out.p, g_out.len);
    return EH_OK; /* whatever happened: the host must fail the request on a failed call */
}

EH_EXPORT_PRE
EH_EXPORT_POST
