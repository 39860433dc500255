#include "inference_worker/text/pretokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <string>

#include "absl/strings/str_cat.h"

namespace ossgate::text {

// White_Space property: TAB..CR, SPACE, NEL, NBSP, OGHAM SPACE MARK,
// EN QUAD..HAIR SPACE, LINE/PARAGRAPH SEPARATOR, NNBSP, MMSP, IDEOGRAPHIC SPACE.
#define OSSGATE_WS "\\t\\n\\x{0B}\\f\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"
const char kO200kPattern[] =
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    "|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    "|\\p{N}{1,3}"
    "| ?[^" OSSGATE_WS "\\p{L}\\p{N}]+[\\r\\n/]*"
    "|[" OSSGATE_WS "]*[\\r\\n]+"
    "|[" OSSGATE_WS "]+(?![^" OSSGATE_WS "])"
    "|[" OSSGATE_WS "]+";
const char kQwen2Pattern[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)"
    "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+"
    "|\\p{N}"
    "| ?[^" OSSGATE_WS "\\p{L}\\p{N}]+[\\r\\n]*"
    "|[" OSSGATE_WS "]*[\\r\\n]+"
    "|[" OSSGATE_WS "]+(?![^" OSSGATE_WS "])"
    "|[" OSSGATE_WS "]+";
#undef OSSGATE_WS

namespace {
pcre2_code* Code(void* p) { return static_cast<pcre2_code*>(p); }

// Length in bytes of the UTF-8 character starting with `lead` (valid input).
size_t CharLength(unsigned char lead) { return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4; }
}  // namespace

absl::StatusOr<std::unique_ptr<PreTokenizer>> PreTokenizer::Create() { return Create(kO200kPattern); }

absl::StatusOr<std::unique_ptr<PreTokenizer>> PreTokenizer::Create(const char* pattern) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern), PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof(message));
    return absl::InternalError(absl::StrCat("PCRE2 rejected the pre-tokenizer pattern at offset ", offset, ": ",
                                            reinterpret_cast<const char*>(message),
                                            "; PCRE2 must be built with Unicode support (libpcre2-8 >= 10.34)"));
  }
  std::unique_ptr<PreTokenizer> p(new PreTokenizer());
  p->code_ = code;
  // JIT is an optimisation only: without it (unsupported CPU, SELinux
  // execmem denial) the interpreter gives the same matches.
  p->jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  return p;
}

PreTokenizer::~PreTokenizer() { pcre2_code_free(Code(code_)); }

void PreTokenizer::Split(absl::string_view text, absl::FunctionRef<void(absl::string_view)> piece) const {
  if (text.empty()) return;
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(Code(code_), nullptr);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0;
  while (pos < text.size()) {
    int rc = pcre2_match(Code(code_), subject, text.size(), pos, PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
      // The interpreter keeps its backtracking state on the heap; retry there.
      rc = pcre2_match(Code(code_), subject, text.size(), pos, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, nullptr);
    }
    size_t start = text.size(), end = text.size();
    if (rc > 0) {
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
      start = ov[0];
      end = ov[1];
    }
    // Every character matches some alternative, so there is never a gap and
    // never an empty match; should the engine fail anyway (resource limits),
    // the text still goes through whole rather than being dropped: the gap
    // becomes its own piece and an empty match advances by one character.
    if (start > pos) piece(text.substr(pos, start - pos));
    if (end <= start) {
      if (start >= text.size()) break;
      end = start + CharLength(static_cast<unsigned char>(text[start]));
    }
    piece(text.substr(start, end - start));
    pos = end;
  }
  pcre2_match_data_free(md);
}

}  // namespace ossgate::text
