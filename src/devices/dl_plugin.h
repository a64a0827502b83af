// What every dlopen'ed vendor backend (NVML, DCMI, CNDev, ROCm SMI) shares:
// the library, the resolved entry points, and the one-time Init that leaves
// the plugin unavailable with a reason (never a crash) when the library is
// missing, lacks a required symbol or fails to initialise.
#ifndef ICOS_DEVICES_DL_PLUGIN_H_
#define ICOS_DEVICES_DL_PLUGIN_H_

#include <initializer_list>
#include <memory>
#include <string>
#include <utility>

#include "devices/device_plugin.h"
#include "devices/dl_library.h"

namespace icos::devices {

// `Api` is the backend's table of resolved entry points; it may be incomplete
// here as long as the backend defines its destructor where Api is complete.
template <typename Api>
class DlPlugin : public DevicePlugin {
 public:
  bool available() const override { return available_; }
  std::string unavailable_reason() const override { return reason_; }

 protected:
  // The first call opens `path` and returns true. Later calls return false
  // (Init already ran), as does a library that does not load: the plugin is
  // then unavailable with dlopen's message.
  bool OpenOnce(const std::string& path) {
    if (initialized_) return false;
    initialized_ = true;
    path_ = path;
    std::string error;
    if (!library_.Open(path, &error)) {
      MakeUnavailable(std::move(error));
      return false;
    }
    return true;
  }

  // True (and the plugin unavailable, naming the symbol) when a required
  // symbol did not resolve; `hint` says what usually causes it.
  bool LacksRequired(std::initializer_list<DlLibrary::Required> required, const char* hint) {
    const char* missing = DlLibrary::FirstMissing(required);
    if (missing == nullptr) return false;
    MakeUnavailable(path_ + " lacks required symbol " + missing + " (" + hint + ")");
    return true;
  }

  // The backend cannot be used: say why, drop the entry points, close the library.
  void MakeUnavailable(std::string reason) {
    available_ = false;
    reason_ = std::move(reason);
    api_.reset();
    library_.Close();
  }

  void MakeAvailable(std::unique_ptr<Api> api) {
    api_ = std::move(api);
    available_ = true;
    reason_.clear();
  }

  DlLibrary library_;
  std::unique_ptr<Api> api_;

 private:
  bool initialized_ = false;
  bool available_ = false;
  std::string reason_;
  std::string path_;
};

}  // namespace icos::devices

#endif  // ICOS_DEVICES_DL_PLUGIN_H_
