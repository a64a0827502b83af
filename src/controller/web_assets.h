// The dashboard's built files (web/dist), embedded into the binary at build
// time by embed_web_assets.cmake, so the one `icos` binary carries its
// dashboard. When web/dist did not exist at build time the only asset is a
// page that says how to build it.
//
// Thread-safety: everything here is immutable after static initialisation.
#ifndef ICOS_CONTROLLER_WEB_ASSETS_H_
#define ICOS_CONTROLLER_WEB_ASSETS_H_

#include <cstddef>
#include <string_view>

namespace icos::net {
class Router;
}

namespace icos::controller {

struct WebAsset {
  std::string_view path;  // URL path, e.g. "/index.html", "/assets/index-3f2a.js"
  std::string_view data;  // the file's bytes
};

// Defined in the generated web_assets_data.cc.
extern const WebAsset kWebAssets[];
extern const size_t kNumWebAssets;
// false: web/dist was absent at build time and kWebAssets holds only the
// "how to build the dashboard" page.
extern const bool kWebAssetsBuilt;

// The asset served at a URL path; "/" is "/index.html". nullptr if none.
const WebAsset* FindWebAsset(std::string_view url_path);

// Content-Type by file extension; application/octet-stream when unknown.
std::string_view ContentTypeFor(std::string_view path);

// Cache-Control: files under /assets/ carry a content hash in their name
// (Vite), so they never change and may be cached for a year; everything else
// (index.html) must be revalidated so a new build shows at once.
std::string_view CacheControlFor(std::string_view path);

// Adds a GET route for "/" and for every embedded asset: exact paths, served
// on the I/O thread (a memory copy: no pool can be too busy for it), labelled
// "static" in the request metrics.
void RegisterWebAssets(net::Router& router);

}  // namespace icos::controller

#endif  // ICOS_CONTROLLER_WEB_ASSETS_H_
