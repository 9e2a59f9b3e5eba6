// The one-line notice a kernel prints when it cannot take a shape (or this CPU) and falls
// back to the reference path (DESIGN.md convention 4: never silently).
#pragma once
#include <string>

namespace modelpress::kernels {

// Writes "modelpress: <message>" to stderr the first time `key` is seen in this process.
// Once per key, because a model runs the same layer shape many times per forward pass and a
// line per call would drown everything else; the key names the layer shape and the reason.
void log_fallback_once(const std::string& key, const std::string& message);

}  // namespace modelpress::kernels
