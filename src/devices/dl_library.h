// A dlopen'ed vendor library: the small part every backend shares. Opening
// never throws or aborts; a missing library or symbol is a reason string the
// plugin reports through unavailable_reason().
#ifndef ICOS_DEVICES_DL_LIBRARY_H_
#define ICOS_DEVICES_DL_LIBRARY_H_

#include <dlfcn.h>

#include <initializer_list>
#include <string>
#include <utility>

namespace icos::devices {

// Owns one dlopen handle. Thread-safety: not thread-safe.
class DlLibrary {
 public:
  DlLibrary() = default;
  ~DlLibrary() { Close(); }
  DlLibrary(const DlLibrary&) = delete;
  DlLibrary& operator=(const DlLibrary&) = delete;

  // Opens `path` (a soname searched like the dynamic linker does, or a file).
  // On failure returns false and sets *error to "cannot load PATH: why".
  bool Open(const std::string& path, std::string* error) {
    Close();
    dlerror();
    // RTLD_LOCAL: two vendors' libraries may export clashing helper symbols.
    handle_ = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle_ == nullptr) {
      const char* why = dlerror();
      *error = "cannot load " + path + ": " + (why != nullptr ? why : "unknown dlopen error");
      return false;
    }
    return true;
  }

  void Close() {
    if (handle_ != nullptr) dlclose(handle_);
    handle_ = nullptr;
  }

  bool is_open() const { return handle_ != nullptr; }

  // A symbol a backend cannot work without, and whether it resolved.
  struct Required {
    const char* symbol;
    bool resolved;
  };
  // The first required symbol that did not resolve, or nullptr when all did.
  static const char* FirstMissing(std::initializer_list<Required> required) {
    for (const Required& r : required) {
      if (!r.resolved) return r.symbol;
    }
    return nullptr;
  }

  // Looks `symbol` up and stores it in `fn` (nullptr when absent).
  template <typename Fn>
  bool Resolve(const char* symbol, Fn& fn) const {
    fn = handle_ != nullptr ? reinterpret_cast<Fn>(dlsym(handle_, symbol)) : nullptr;
    return fn != nullptr;
  }

 private:
  void* handle_ = nullptr;
};

}  // namespace icos::devices

#endif  // ICOS_DEVICES_DL_LIBRARY_H_
