/* A stand-in for Coral's libedgetpu.so.1, built by the tests (tests/inference/conftest.py).
 *
 * It exports the TFLite external-delegate plug-in entry points that libedgetpu exports and
 * that `load_delegate("libedgetpu.so.1", {"device": ...})` calls:
 *
 *   TfLiteDelegate* tflite_plugin_create_delegate(char** keys, char** values, size_t n,
 *                                                 void (*report_error)(const char*));
 *   void tflite_plugin_destroy_delegate(TfLiteDelegate* delegate);
 *
 * The delegate claims no node (its Prepare returns kTfLiteOk and replaces nothing), so a model
 * runs on the CPU kernels: a copy of a CPU int8 model named `x_edgetpu.tflite` runs under it.
 *
 * What it does when a delegate is created is chosen by, in this order:
 *   - the first word of the file named by $MASKDET_STAND_IN_CONTROL (re-read at every call, so
 *     a test can change the behaviour of a running program: make the "device" recover);
 *   - $MASKDET_STAND_IN;
 *   - "ok".
 * ok: a delegate; none: NULL after report_error (as when no device opens: the runtime raises
 * ValueError); segv: SIGSEGV (a libedgetpu built for another TFLite runtime); bus: SIGBUS;
 * abort: abort() (libedgetpu's LOG(FATAL)); hang: sleeps forever (a wedged device).
 * $MASKDET_STAND_IN_LOG, when set, gets one line per call: "pid=<pid> device=<value>".
 */
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The layout of TfLiteDelegate in tensorflow/lite/core/c/common.h (TensorFlow 2.x, the TFLite
 * ABI that ai-edge-litert, tflite-runtime and tf.lite share). Only pointers to the other types
 * are used, so they stay incomplete. */
typedef enum { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;
typedef int TfLiteBufferHandle;
struct TfLiteContext;
struct TfLiteTensor;
struct TfLiteOpaqueDelegateBuilder;

typedef struct TfLiteDelegate {
  void* data_;
  TfLiteStatus (*Prepare)(struct TfLiteContext* context, struct TfLiteDelegate* delegate);
  TfLiteStatus (*CopyFromBufferHandle)(struct TfLiteContext* context,
                                       struct TfLiteDelegate* delegate,
                                       TfLiteBufferHandle buffer_handle,
                                       struct TfLiteTensor* tensor);
  TfLiteStatus (*CopyToBufferHandle)(struct TfLiteContext* context,
                                     struct TfLiteDelegate* delegate,
                                     TfLiteBufferHandle buffer_handle,
                                     struct TfLiteTensor* tensor);
  void (*FreeBufferHandle)(struct TfLiteContext* context, struct TfLiteDelegate* delegate,
                           TfLiteBufferHandle* handle);
  int64_t flags;
  struct TfLiteOpaqueDelegateBuilder* opaque_delegate_builder;
} TfLiteDelegate;

static TfLiteStatus prepare(struct TfLiteContext* context, struct TfLiteDelegate* delegate) {
  (void)context;
  (void)delegate;
  return kTfLiteOk; /* no node claimed: the CPU kernels run the whole graph */
}

/* The behaviour word: from the control file, else the environment, else "ok". */
static void behaviour(char* word, size_t size) {
  const char* control = getenv("MASKDET_STAND_IN_CONTROL");
  const char* fixed = getenv("MASKDET_STAND_IN");
  snprintf(word, size, "%s", fixed && *fixed ? fixed : "ok");
  if (control && *control) {
    FILE* f = fopen(control, "r");
    if (f) {
      char buffer[64] = {0};
      if (fscanf(f, "%63s", buffer) == 1) snprintf(word, size, "%s", buffer);
      fclose(f);
    }
  }
}

static void log_call(char** keys, char** values, size_t n) {
  const char* path = getenv("MASKDET_STAND_IN_LOG");
  const char* device = "-";
  size_t i;
  FILE* f;
  if (!path || !*path) return;
  for (i = 0; i < n; i++)
    if (keys[i] && strcmp(keys[i], "device") == 0 && values[i]) device = values[i];
  f = fopen(path, "a");
  if (!f) return;
  fprintf(f, "pid=%ld device=%s\n", (long)getpid(), device);
  fclose(f);
}

TfLiteDelegate* tflite_plugin_create_delegate(char** keys, char** values, size_t n,
                                              void (*report_error)(const char*)) {
  char word[64];
  TfLiteDelegate* delegate;
  log_call(keys, values, n);
  behaviour(word, sizeof word);
  if (strcmp(word, "none") == 0) {
    if (report_error) report_error("stand-in libedgetpu: no Edge TPU device could be opened");
    return NULL;
  }
  if (strcmp(word, "segv") == 0) raise(SIGSEGV);
  if (strcmp(word, "bus") == 0) raise(SIGBUS);
  if (strcmp(word, "abort") == 0) abort();
  if (strcmp(word, "hang") == 0)
    for (;;) pause();
  delegate = calloc(1, sizeof *delegate);
  if (!delegate) return NULL;
  delegate->Prepare = prepare;
  return delegate;
}

void tflite_plugin_destroy_delegate(TfLiteDelegate* delegate) { free(delegate); }
