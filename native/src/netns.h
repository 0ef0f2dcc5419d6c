// Runs a block of code inside another network namespace on the calling thread
// and always switches back, even when the block throws.
#pragma once

#include <fcntl.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <string>

#include "errors.h"

namespace switchyard {

class NetnsGuard {
 public:
  NetnsGuard(Napi::Env env, const std::string& path) : env_(env) {
    std::string self = "/proc/self/task/" + std::to_string(syscall(SYS_gettid)) + "/ns/net";
    original_ = open(self.c_str(), O_RDONLY | O_CLOEXEC);
    if (original_ < 0) ThrowErrno(env, errno, "open", "cannot open the current network namespace " + self);
    int target = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (target < 0) {
      int err = errno;
      close(original_);
      ThrowErrno(env, err, "open", "cannot open network namespace " + path,
                 err == ENOENT ? "The pod's sandbox is gone or the path is wrong" : "");
    }
    if (setns(target, CLONE_NEWNET) < 0) {
      int err = errno;
      close(target);
      close(original_);
      ThrowErrno(env, err, "setns", "cannot enter network namespace " + path,
                 err == EPERM ? "The agent needs CAP_SYS_ADMIN" : "Is it a network namespace file?");
    }
    close(target);
  }

  ~NetnsGuard() {
    // Failing to return would leave this thread in a pod's netns: unrecoverable.
    if (setns(original_, CLONE_NEWNET) < 0) abort();
    close(original_);
  }

  NetnsGuard(const NetnsGuard&) = delete;
  NetnsGuard& operator=(const NetnsGuard&) = delete;

 private:
  Napi::Env env_;
  int original_ = -1;
};

}  // namespace switchyard
