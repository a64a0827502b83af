// The conformance suite every StateStore backend passes: the interface's
// contract (state_store.h) written as tests, so SQLite and PostgreSQL cannot
// drift apart.
//
// A backend's test file instantiates it with factories for fresh, empty stores:
//
//   INSTANTIATE_TEST_SUITE_P(
//       Sqlite, StateStoreConformanceTest,
//       ::testing::Values(StoreBackend{"InMemory", [] { return MakeInMemoryStore(); }}),
//       StoreBackendName);
//
// and links the icos_store_conformance object library (the tests register
// themselves at static-initialisation time).
#ifndef ICOS_STORE_STATE_STORE_CONFORMANCE_H_
#define ICOS_STORE_STATE_STORE_CONFORMANCE_H_

#include <functional>
#include <memory>
#include <ostream>
#include <string>

#include "gtest/gtest.h"
#include "store/state_store.h"

namespace icos::store {

// Returns a new store with no jobs, tasks, nodes, queues, tokens or events, or
// nullptr when the backend cannot be set up (the test then fails).
using StoreFactory = std::function<std::unique_ptr<StateStore>()>;

// Makes a fresh, empty database and returns a factory that opens store
// objects on it, as several controller processes would (leadership tests).
using SharedStoreFactory = std::function<StoreFactory()>;

struct StoreBackend {
  std::string name;  // appended to test names: letters, digits and '_' only
  StoreFactory make;
  // Only for SharedStoreConformanceTest (a ":memory:" database cannot have
  // two store objects, so that backend is not instantiated there).
  SharedStoreFactory make_shared = nullptr;
};

// So gtest names parameters "Sqlite/StateStoreConformanceTest.X/InMemory".
std::string StoreBackendName(const ::testing::TestParamInfo<StoreBackend>& info);
void PrintTo(const StoreBackend& backend, std::ostream* os);

// Each test gets a fresh store from the parameter's factory.
class StateStoreConformanceTest : public ::testing::TestWithParam<StoreBackend> {
 protected:
  void SetUp() override;

  std::unique_ptr<StateStore> store_;
};

// Tests of several store objects on one database (leadership between
// controllers); instantiated with backends that set make_shared.
class SharedStoreConformanceTest : public ::testing::TestWithParam<StoreBackend> {};

}  // namespace icos::store

#endif  // ICOS_STORE_STATE_STORE_CONFORMANCE_H_
