// The one place where C++ errors become Python exceptions. The Python classes live in
// relay_context.errors so that users catch the same types whether a check ran in C++ or Python.
#include <exception>

#include "common/binding.hpp"
#include "common/errors.hpp"

namespace relay::bind {
namespace {

void raise_as(const char* class_name, const char* message) {
    const py::object cls = py::module_::import("relay_context.errors").attr(class_name);
    PyErr_SetString(cls.ptr(), message);
}

}  // namespace

void register_error_translator() {
    py::register_exception_translator([](std::exception_ptr ptr) {
        if (!ptr) {
            return;
        }
        try {
            std::rethrow_exception(ptr);
        } catch (const DisallowedSpecialToken& e) {
            raise_as("DisallowedSpecialTokenError", e.what());
        } catch (const RankFileError& e) {
            raise_as("RankFileError", e.what());
        } catch (const UnknownTokenId& e) {
            raise_as("UnknownTokenIdError", e.what());
        } catch (const InfeasibleBudget& e) {
            raise_as("InfeasibleBudgetError", e.what());
        } catch (const CorruptFrame& e) {
            raise_as("CorruptFrameError", e.what());
        } catch (const SizeLimitExceeded& e) {
            raise_as("SizeLimitExceededError", e.what());
        } catch (const BackendUnavailable& e) {
            raise_as("BackendUnavailableError", e.what());
        } catch (const InvalidArgument& e) {
            raise_as("InvalidArgumentError", e.what());
        } catch (const Error& e) {
            raise_as("RelayError", e.what());
        }
    });
}

}  // namespace relay::bind
