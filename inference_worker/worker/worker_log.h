// The worker's log: one line per event on stderr, "<UTC time> worker: <text>",
// and the escaping of untrusted text (file metadata, token fields, client
// input, peer certificates, messages of other services) that goes into log
// lines and error messages.
//
// Two layers, so no single forgotten call lets a forged value start a line of
// its own (a fake "phase=verified ..." record):
//  - Quote() makes an untrusted value unambiguous where it is inserted:
//    "..." with every byte outside printable ASCII, '"' and '\' as \xHH.
//  - LogLine() writes control bytes of the whole line as \xHH, whatever the
//    caller did, so a log line is always exactly one line.
//
// Thread-safety: all functions are thread-safe (one fprintf per line).
#pragma once

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"

namespace ossgate::worker {

// `s` in double quotes, escaped as above, cut after `max_bytes` input bytes
// with "...(N more bytes)" appended.
std::string Quote(absl::string_view s, size_t max_bytes = 256);

// `s` as is when it is non-empty and made only of [A-Za-z0-9._:/@+-] (ids,
// hex digests, URIs, paths: nothing that could read as log syntax), else
// Quote(s, max_bytes). For values in "key=value" log fields.
std::string LogValue(absl::string_view s, size_t max_bytes = 256);

// `s` with bytes below 0x20 and 0x7f written as \xHH (the rest unchanged).
std::string EscapeControl(absl::string_view s);

// Writes "<time> worker: <EscapeControl(text)>\n" to stderr and flushes.
void LogLine(absl::string_view text);

}  // namespace ossgate::worker
