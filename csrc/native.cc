// The Python extension module that carries the native kernels. Python never calls
// into it: it is an extension module only so that it installs, and is found, like
// any other (`importlib.util.find_spec`, editable installs included). The FFI
// handlers are loaded from it with ctypes (src/lineax_kernels/_native.py).
#include <Python.h>

#include "simd.h"

extern "C" {

// What the library was compiled for, shown by lxk.backend_info().
__attribute__((visibility("default"))) const char* lxk_isa =
#if defined(__x86_64__)
    "x86-64"
#elif defined(__aarch64__)
    "aarch64"
#else
    "generic"
#endif
#if defined(__AVX512F__) && !defined(LXK_NO_AVX512)
    " AVX-512"
#elif defined(__AVX2__)
    " AVX2"
#elif defined(__AVX__)
    " AVX"
#endif
    ;

static struct PyModuleDef lxk_native_module = {
    PyModuleDef_HEAD_INIT, "_lineax_kernels_native",
    "Native CPU kernels of lineax-kernels (XLA FFI handlers; see _native.py).", -1,
    nullptr};

__attribute__((visibility("default"))) PyMODINIT_FUNC
PyInit__lineax_kernels_native(void) {
  return PyModule_Create(&lxk_native_module);
}
}
