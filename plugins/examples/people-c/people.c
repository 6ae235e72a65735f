/*
 * people.c - edgehost cascade plugin in C (kind "both", run as one shared instance per
 * worker: pipeline key shared_instance = true). The pipeline's model is an SSD detector
 * (TFLite_Detection_PostProcess outputs).
 *
 *   pre:  decode the PNG/JPEG once (JPEG at the smallest DCT scale >= decode_min), keep it in
 *         this instance's memory, resize it into the detector's uint8 input.
 *   post: for each detection scoring >= threshold (at most max_objects):
 *         "person"  -> a square crop (side = scale x the box's longer side, centred, padded
 *                      black) resized to the pose model's input (float32 0..1), run the pose
 *                      model (ABI 1.3 model call) -> 33 keypoints in the original image's pixels;
 *         otherwise -> the box cropped and resized to the classifier's input, run it -> top-1.
 *         The kept image is freed at the end of post.
 *   Result: {"image":{"width":W,"height":H},"objects":[{"label":"person","score":0.9,
 *            "box":[ymin,xmin,ymax,xmax],"keypoints":[[x,y],...33]},
 *            {"label":"laptop","score":0.8,"box":[...],"class":"notebook","class_score":0.7}]}
 *
 * Routing: "pose_labels" (default ["person"]) names the detector labels cropped to the pose
 * model; "classify_labels" those cropped to the classifier (default: every other label). An
 * object on neither route is reported without a second model, and a model no route needs is
 * never opened (nor needs a grant).
 *
 * Params: "labels" (detector labels, with "label_offset"), "class_labels" (classifier),
 * "threshold" 0.5, "max_objects" 16, "pose_model" "pose", "classifier" "mobilenet",
 * "person_scale" 1.25, "decode_min" 0 (full size; e.g. 512 decodes a JPEG at the smallest DCT scale >= 512x512). The models must be in grants.models.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "edgehost.h"
#include "image.h"

static char **g_labels, **g_clabels;
static size_t *g_label_len, *g_clabel_len, g_nlabels, g_nclabels;
static long g_offset = 0, g_max = 16, g_decode_min = 0; /* 0: full size (a JPEG DCT-scaled decode saves time, moves boxes a little) */
static double g_threshold = 0.5, g_scale = 1.25;
static char g_pose_name[64] = "pose", g_cls_name[64] = "mobilenet";
static eh_model g_pose, g_cls;
static char **g_pose_labels, **g_cls_labels; /* routes (see above) */
static size_t *g_pose_len, *g_cls_len, g_npose = 1, g_ncls;
static int g_cls_all = 1; /* no "classify_labels": every label not routed to pose */
static char g_person[] = "person";
static char *g_person_list[] = {g_person};
static size_t g_person_len[] = {6};
static img g_img;             /* the decoded image, kept from pre to post */
static uint32_t g_ow, g_oh;   /* the original image's size */
static eh_buf g_out;

static int num_param(const char *p, size_t n, const char *key, double lo, double hi, double *out) {
    eh_json v;
    double d;
    if (eh_json_get(p, n, key, &v) != 1) return EH_OK;
    if (eh_json_number(&v, &d) != 0 || !(d >= lo && d <= hi))
        return eh_fail(EH_BAD_PARAMS, "params: \"%s\" must be a number in [%g, %g]", key, lo, hi);
    *out = d;
    return EH_OK;
}

static int str_param(const char *p, size_t n, const char *key, char *dst, size_t cap) {
    eh_json v;
    if (eh_json_get(p, n, key, &v) != 1) return EH_OK;
    size_t l;
    char *s = eh_json_string_dup(&v, &l);
    if (!s || l == 0 || l >= cap) {
        free(s);
        return eh_fail(EH_BAD_PARAMS, "params: \"%s\" must be a model name", key);
    }
    memcpy(dst, s, l + 1);
    free(s);
    return EH_OK;
}

int eh_plugin_init(const char *p, size_t n) {
    eh_json v;
    int rc;
    double d;
    if (eh_json_get(p, n, "labels", &v) < 0) return eh_fail(EH_BAD_PARAMS, "params: not a valid JSON object");
    if ((rc = num_param(p, n, "threshold", 0, 1, &g_threshold)) != EH_OK) return rc;
    if ((rc = num_param(p, n, "person_scale", 1, 4, &g_scale)) != EH_OK) return rc;
    d = (double)g_offset;
    if ((rc = num_param(p, n, "label_offset", -1000, 1000, &d)) != EH_OK) return rc;
    g_offset = (long)d;
    d = (double)g_max;
    if ((rc = num_param(p, n, "max_objects", 1, 100000, &d)) != EH_OK) return rc;
    g_max = (long)d;
    d = (double)g_decode_min;
    if ((rc = num_param(p, n, "decode_min", 0, 65535, &d)) != EH_OK) return rc;
    g_decode_min = (long)d;
    if ((rc = str_param(p, n, "pose_model", g_pose_name, sizeof g_pose_name)) != EH_OK) return rc;
    if ((rc = str_param(p, n, "classifier", g_cls_name, sizeof g_cls_name)) != EH_OK) return rc;
    if (eh_json_get(p, n, "labels", &v) == 1 &&
        (rc = eh_json_string_array(&v, "labels", &g_labels, &g_label_len, &g_nlabels)) != EH_OK)
        return rc;
    if (eh_json_get(p, n, "class_labels", &v) == 1 &&
        (rc = eh_json_string_array(&v, "class_labels", &g_clabels, &g_clabel_len, &g_nclabels)) != EH_OK)
        return rc;
    g_pose_labels = g_person_list, g_pose_len = g_person_len;
    if (eh_json_get(p, n, "pose_labels", &v) == 1 &&
        (rc = eh_json_string_array(&v, "pose_labels", &g_pose_labels, &g_pose_len, &g_npose)) != EH_OK)
        return rc;
    if (eh_json_get(p, n, "classify_labels", &v) == 1) {
        if ((rc = eh_json_string_array(&v, "classify_labels", &g_cls_labels, &g_cls_len, &g_ncls)) != EH_OK) return rc;
        g_cls_all = 0;
    }
    /* The models' tensors are described now (model_tensors works outside a request) and
     * their buffers allocated once, in this instance's memory; only the models a route needs. */
    if (g_npose > 0) {
        if ((rc = eh_model_open(&g_pose, g_pose_name)) != EH_OK) return EH_BAD_PARAMS;
        eh_tensor *pi = eh_model_input(&g_pose, 0);
        if (!pi || pi->dtype != EH_FLOAT32 || pi->ndims != 4 || pi->dims[3] != 3 || !eh_model_output(&g_pose, 0) ||
            eh_tensor_count(eh_model_output(&g_pose, 0)) < 33 * 5)
            return eh_fail(EH_BAD_PARAMS, "pose model %s: want a float32 [1,H,W,3] input and >= 165 landmark values",
                           g_pose_name);
    }
    if (g_cls_all || g_ncls > 0) {
        if ((rc = eh_model_open(&g_cls, g_cls_name)) != EH_OK) return EH_BAD_PARAMS;
        eh_tensor *ci = eh_model_input(&g_cls, 0);
        if (!ci || ci->ndims != 4 || ci->dims[3] != 3 || !eh_model_output(&g_cls, 0))
            return eh_fail(EH_BAD_PARAMS, "classifier %s: want a [1,H,W,3] input", g_cls_name);
    }
    return EH_OK;
}

int eh_plugin_pre(eh_call *call) {
    img_free(&g_img);
    memset(&g_img, 0, sizeof g_img);
    if (eh_call_ntensors(call) != 1) return eh_fail(EH_INTERNAL, "people-c: the detector must have 1 input");
    eh_tensor *t = eh_call_tensor(call, 0);
    if (eh_tensor_count(t) == 0 || t->ndims != 4 || t->dims[3] != 3 || t->dtype != EH_UINT8)
        return eh_fail(EH_INTERNAL, "people-c: the detector input must be uint8 [1,H,W,3]");
    const uint8_t *in = eh_call_input(call);
    size_t n = eh_call_input_len(call);
    img_err err = {{0}};
    int rc;
    if (jpeg_sniff(in, n))
        rc = jpeg_decode_scaled(in, n, 48u << 20, (uint32_t)g_decode_min, (uint32_t)g_decode_min, &g_img, &err);
    else if (png_sniff(in, n))
        rc = png_decode(in, n, 48u << 20, &g_img, &err);
    else
        return eh_fail(EH_BAD_INPUT, "people-c: request body is not a PNG or JPEG image");
    if (rc != IMG_OK) return eh_fail(rc, "%s", err.msg);
    g_ow = g_img.w, g_oh = g_img.h;
    img_header_size(in, n, &g_ow, &g_oh);
    /* The same filter as the crops (Pillow's antialiased bilinear) over the whole image. */
    return eh_crop_resize_rgb(g_img.pix, g_img.w, g_img.h, 0, 0, g_img.w, g_img.h, t, 0, 1, 0);
}

static int in_list(char **ls, size_t *ll, size_t n, const char *s, size_t len) {
    for (size_t i = 0; i < n; i++)
        if (ll[i] == len && memcmp(ls[i], s, len) == 0) return 1;
    return 0;
}

static void label(eh_buf *b, char **ls, size_t *ll, size_t nl, long j) {
    if (j >= 0 && (size_t)j < nl) eh_buf_json_string(b, ls[j], ll[j]);
    else eh_buf_append(b, "\"\"", 2);
}

/* Crop a box given in original pixels from the kept (maybe downscaled) image. */
static int crop(double x0, double y0, double x1, double y1, eh_tensor *t, float mean, float sd) {
    double sx = (double)g_img.w / g_ow, sy = (double)g_img.h / g_oh;
    return eh_crop_resize_rgb(g_img.pix, g_img.w, g_img.h, x0 * sx, y0 * sy, x1 * sx, y1 * sy, t, mean, sd, 0);
}

static int person(double ymin, double xmin, double ymax, double xmax) {
    double cx = (xmin + xmax) / 2, cy = (ymin + ymax) / 2;
    double side = fmax(xmax - xmin, ymax - ymin) * g_scale;
    double x0 = cx - side / 2, y0 = cy - side / 2;
    eh_tensor *in = eh_model_input(&g_pose, 0);
    int rc;
    if ((rc = crop(x0, y0, x0 + side, y0 + side, in, 0.0f, 255.0f)) != EH_OK) return rc;
    if ((rc = eh_model_run(&g_pose)) != EH_OK) return rc;
    eh_tensor *lm = eh_model_output(&g_pose, 0);
    double W = in->dims[2], H = in->dims[1];
    eh_buf_append(&g_out, ",\"keypoints\":[", 14);
    for (int k = 0; k < 33; k++) {
        double x = x0 + eh_tensor_get_f32(lm, (size_t)k * 5) / W * side;
        double y = y0 + eh_tensor_get_f32(lm, (size_t)k * 5 + 1) / H * side;
        eh_buf_printf(&g_out, "%s[%.1f,%.1f]", k ? "," : "", x, y);
    }
    eh_buf_append(&g_out, "]", 1);
    return EH_OK;
}

static int classify(double ymin, double xmin, double ymax, double xmax) {
    eh_tensor *in = eh_model_input(&g_cls, 0);
    int rc;
    float mean = 127.5f, sd = 127.5f; /* float classifiers: [-1, 1]; uint8/int8 take raw pixels */
    if ((rc = crop(xmin, ymin, xmax, ymax, in, mean, sd)) != EH_OK) return rc;
    if ((rc = eh_model_run(&g_cls)) != EH_OK) return rc;
    eh_tensor *out = eh_model_output(&g_cls, 0);
    long best = eh_tensor_argmax(out);
    eh_buf_append(&g_out, ",\"class\":", 9);
    label(&g_out, g_clabels, g_clabel_len, g_nclabels, best);
    eh_buf_append(&g_out, ",\"class_score\":", 15);
    eh_buf_json_number(&g_out, best >= 0 ? eh_tensor_get_f32(out, (size_t)best) : 0);
    return EH_OK;
}

int eh_plugin_post(eh_call *call) {
    eh_buf_reset(&g_out);
    int rc = EH_OK;
    if (!g_img.pix) return eh_fail(EH_INTERNAL, "people-c: no image kept from pre (is shared_instance set?)");
    if (eh_call_ntensors(call) != 4) {
        rc = eh_fail(EH_UNSUPPORTED, "people-c: want the 4 outputs of TFLite_Detection_PostProcess");
        goto done;
    }
    eh_tensor *boxes = eh_call_tensor(call, 0), *classes = eh_call_tensor(call, 1);
    eh_tensor *scores = eh_call_tensor(call, 2), *count = eh_call_tensor(call, 3);
    float cf = eh_tensor_count(count) ? eh_tensor_get_f32(count, 0) : 0;
    size_t n = cf > 0 && cf == cf ? (size_t)cf : 0;
    if (n > eh_tensor_count(scores)) n = eh_tensor_count(scores);
    if (n > eh_tensor_count(classes)) n = eh_tensor_count(classes);
    if (n > eh_tensor_count(boxes) / 4) n = eh_tensor_count(boxes) / 4;
    eh_buf_printf(&g_out, "{\"image\":{\"width\":%u,\"height\":%u},\"objects\":[", g_ow, g_oh);
    long found = 0;
    for (size_t i = 0; i < n && found < g_max; i++) {
        float s = eh_tensor_get_f32(scores, i);
        if (!(s >= g_threshold)) continue;
        float cl = eh_tensor_get_f32(classes, i);
        long j = (cl == cl && fabsf(cl) < 1e9f ? (long)cl : -1) + g_offset;
        double b[4];
        for (int k = 0; k < 4; k++) {
            double v = eh_tensor_get_f32(boxes, 4 * i + (size_t)k);
            v = v < 0 ? 0 : v > 1 ? 1 : v;
            b[k] = v * ((k % 2 == 0) ? g_oh : g_ow);
        }
        if (!(b[2] > b[0] && b[3] > b[1])) continue;
        eh_buf_append(&g_out, found ? ",{\"label\":" : "{\"label\":", found ? 10 : 9);
        label(&g_out, g_labels, g_label_len, g_nlabels, j);
        eh_buf_append(&g_out, ",\"score\":", 9);
        eh_buf_json_number(&g_out, s);
        eh_buf_printf(&g_out, ",\"box\":[%.1f,%.1f,%.1f,%.1f]", b[0], b[1], b[2], b[3]);
        const char *ln = j >= 0 && (size_t)j < g_nlabels ? g_labels[j] : "";
        size_t ll = j >= 0 && (size_t)j < g_nlabels ? g_label_len[j] : 0;
        if (in_list(g_pose_labels, g_pose_len, g_npose, ln, ll)) rc = person(b[0], b[1], b[2], b[3]);
        else if (g_cls_all || in_list(g_cls_labels, g_cls_len, g_ncls, ln, ll)) rc = classify(b[0], b[1], b[2], b[3]);
        if (rc != EH_OK) goto done;
        eh_buf_append(&g_out, "}", 1);
        found++;
    }
    eh_buf_append(&g_out, "]}", 2);
    if (g_out.oom) rc = eh_fail(EH_TOO_LARGE, "people-c: out of memory for the result");
    else eh_set_output(call, g_out.p, g_out.len);
done:
    img_free(&g_img); /* the request's image leaves memory with the request */
    memset(&g_img, 0, sizeof g_img);
    return rc;
}

EH_EXPORT_PRE
EH_EXPORT_POST
