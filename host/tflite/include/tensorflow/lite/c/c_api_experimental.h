/* edgehost compatibility header.
 *
 * go-tflite v1.0.1 includes <tensorflow/lite/c/c_api_experimental.h>, which the TFLite
 * packages edgehost installs from the registries do not ship (tfjs-tflite-node carries only
 * c_api.h, common.h and c_api_types.h). This header declares the few experimental entry
 * points go-tflite references, with the signatures of the TFLite C API (exported by both the
 * 2.9 and 2.17 libraries). edgehost's own use of newer API (custom allocation, tensor
 * indices) goes through dlsym in host/tflite/shim.c, so the binary also loads the 2.9 library.
 */
#ifndef EDGEHOST_TFLITE_C_API_EXPERIMENTAL_COMPAT_H_
#define EDGEHOST_TFLITE_C_API_EXPERIMENTAL_COMPAT_H_

#include "tensorflow/lite/c/c_api.h"
#include "tensorflow/lite/c/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The builtin operator codes are an int-sized enum in TFLite's builtin_ops.h; go-tflite
 * only converts integers to this type. */
typedef int TfLiteBuiltinOperator;

TfLiteStatus TfLiteInterpreterResetVariableTensors(TfLiteInterpreter* interpreter);
void TfLiteInterpreterOptionsAddBuiltinOp(TfLiteInterpreterOptions* options, TfLiteBuiltinOperator op,
                                          const TfLiteRegistration* registration, int32_t min_version,
                                          int32_t max_version);
void TfLiteInterpreterOptionsAddCustomOp(TfLiteInterpreterOptions* options, const char* name,
                                         const TfLiteRegistration* registration, int32_t min_version,
                                         int32_t max_version);

#ifdef __cplusplus
}
#endif
#endif
