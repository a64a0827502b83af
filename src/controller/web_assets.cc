#include "controller/web_assets.h"

#include <string>

#include "net/router.h"

namespace icos::controller {

const WebAsset* FindWebAsset(std::string_view url_path) {
  if (url_path == "/" || url_path.empty()) url_path = "/index.html";
  for (size_t i = 0; i < kNumWebAssets; ++i) {
    if (kWebAssets[i].path == url_path) return &kWebAssets[i];
  }
  return nullptr;
}

std::string_view ContentTypeFor(std::string_view path) {
  struct Type {
    std::string_view ext, type;
  };
  static constexpr Type kTypes[] = {
      {".html", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".json", "application/json"},
      {".map", "application/json"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".ico", "image/x-icon"},
      {".woff2", "font/woff2"},
      {".txt", "text/plain; charset=utf-8"},
  };
  for (const auto& t : kTypes) {
    if (path.size() >= t.ext.size() && path.substr(path.size() - t.ext.size()) == t.ext) return t.type;
  }
  return "application/octet-stream";
}

std::string_view CacheControlFor(std::string_view path) {
  return path.starts_with("/assets/") ? "public, max-age=31536000, immutable" : "no-cache";
}

void RegisterWebAssets(net::Router& router) {
  auto serve = [](const WebAsset* a) {
    return [a](const net::Request&, net::Response& res) {
      res.SetHeader("Cache-Control", std::string(CacheControlFor(a->path)));
      res.SetHeader("X-Content-Type-Options", "nosniff");
      res.Set(std::string(a->data), std::string(ContentTypeFor(a->path)));
    };
  };
  const net::RouteOptions options{.on_io_thread = true, .label = "static"};
  if (const WebAsset* index = FindWebAsset("/")) router.Exact("GET", "/", serve(index), options);
  for (size_t i = 0; i < kNumWebAssets; ++i) {
    // Exact paths only: nothing outside the embedded set can be asked for.
    router.Exact("GET", std::string(kWebAssets[i].path), serve(&kWebAssets[i]), options);
  }
}

}  // namespace icos::controller
