// The Python extension module that carries the native kernels, and the registry
// of their FFI targets as a C API. Python never calls the module itself: it is an
// extension module only so that it installs, and is found, like any other
// (`importlib.util.find_spec`, editable installs included). The loader
// (src/lineax_kernels/_native.py) opens it with ctypes and registers every target
// that lxk_num_targets / lxk_target_name / lxk_target_handler list.
#include <Python.h>

#include "ffi_common.h"

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

// The number of FFI targets.
__attribute__((visibility("default"))) int lxk_num_targets(void) {
  return static_cast<int>(lxk::Targets().size());
}

// The name of target i (0 <= i < lxk_num_targets()), or NULL out of range.
__attribute__((visibility("default"))) const char* lxk_target_name(int i) {
  const auto& targets = lxk::Targets();
  return i >= 0 && i < static_cast<int>(targets.size()) ? targets[i].name : nullptr;
}

// The XLA_FFI_Handler* of target i, or NULL out of range.
__attribute__((visibility("default"))) void* lxk_target_handler(int i) {
  const auto& targets = lxk::Targets();
  return i >= 0 && i < static_cast<int>(targets.size())
             ? reinterpret_cast<void*>(targets[i].handler)
             : nullptr;
}

static struct PyModuleDef lxk_native_module = {
    PyModuleDef_HEAD_INIT, "_lineax_kernels_native",
    "Native CPU kernels of lineax-kernels (XLA FFI handlers; see _native.py).", -1,
    nullptr};

PyMODINIT_FUNC PyInit__lineax_kernels_native(void) {
  return PyModule_Create(&lxk_native_module);
}
}
