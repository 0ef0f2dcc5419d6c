// Errors that cross into JavaScript carry errno, its symbolic code, the
// operation, and a sentence that tells the operator what to do about it.
#pragma once

#include <napi.h>
#include <cerrno>
#include <cstring>
#include <string>

namespace switchyard {

struct OsError {
  int err;              // positive errno
  std::string syscall;  // what we were doing, e.g. "bpf_link_create"
  std::string message;  // full sentence, already including the hint
};

inline std::string ErrnoCode(int err) {
  const char* name = strerrorname_np(err);
  return name ? name : "E" + std::to_string(err);
}

inline std::string Describe(int err) { return std::string(strerror(err)) + " (" + ErrnoCode(err) + ")"; }

[[noreturn]] inline void Throw(Napi::Env env, const OsError& e) {
  Napi::Error error = Napi::Error::New(env, e.message);
  error.Set("errno", Napi::Number::New(env, e.err));
  error.Set("code", Napi::String::New(env, ErrnoCode(e.err)));
  error.Set("syscall", Napi::String::New(env, e.syscall));
  throw error;
}

[[noreturn]] inline void ThrowErrno(Napi::Env env, int err, const std::string& syscall, const std::string& what,
                                    const std::string& hint = "") {
  std::string msg = what + ": " + Describe(err);
  if (!hint.empty()) msg += ". " + hint;
  Throw(env, OsError{err, syscall, msg});
}

}  // namespace switchyard
