#include "controller/web_assets.h"

#include <httplib.h>

#include <string>

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

namespace {

// cpp-httplib routes by std::regex; a file name must match only itself.
std::string RegexEscape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (std::string_view(R"(\^$.|?*+()[]{})").find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out;
}

}  // namespace

void RegisterWebAssets(httplib::Server& server) {
  auto serve = [](const WebAsset* a) {
    return [a](const httplib::Request&, httplib::Response& res) {
      res.set_header("Cache-Control", std::string(CacheControlFor(a->path)));
      res.set_header("X-Content-Type-Options", "nosniff");
      res.set_content(a->data.data(), a->data.size(), std::string(ContentTypeFor(a->path)));
    };
  };
  if (const WebAsset* index = FindWebAsset("/")) server.Get("/", serve(index));
  for (size_t i = 0; i < kNumWebAssets; ++i) {
    // Exact paths only: nothing outside the embedded set can be asked for.
    server.Get(RegexEscape(kWebAssets[i].path), serve(&kWebAssets[i]));
  }
}

}  // namespace icos::controller
