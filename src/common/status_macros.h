// Early returns on error, so that a Status is never dropped by accident:
//   ICOS_RETURN_IF_ERROR(store_->Apply(batch));
//   ICOS_ASSIGN_OR_RETURN(auto job, store_->GetJob(id));
#ifndef ICOS_COMMON_STATUS_MACROS_H_
#define ICOS_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define ICOS_STATUS_CONCAT_INNER(a, b) a##b
#define ICOS_STATUS_CONCAT(a, b) ICOS_STATUS_CONCAT_INNER(a, b)

// Returns the Status of `expr` (an absl::Status) from the enclosing function
// unless it is OK.
#define ICOS_RETURN_IF_ERROR(expr)                                  \
  do {                                                              \
    if (::absl::Status icos_status_ = (expr); !icos_status_.ok()) { \
      return icos_status_;                                          \
    }                                                               \
  } while (false)

// Evaluates `expr` (an absl::StatusOr<T>); returns its Status unless OK,
// else moves its value into `lhs` (a declaration or an lvalue).
#define ICOS_ASSIGN_OR_RETURN(lhs, expr) \
  ICOS_ASSIGN_OR_RETURN_IMPL(ICOS_STATUS_CONCAT(icos_statusor_, __LINE__), lhs, expr)
#define ICOS_ASSIGN_OR_RETURN_IMPL(statusor, lhs, expr) \
  auto statusor = (expr);                               \
  if (!statusor.ok()) return statusor.status();         \
  lhs = *std::move(statusor)

#endif  // ICOS_COMMON_STATUS_MACROS_H_
