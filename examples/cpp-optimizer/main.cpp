// Catch2 v2's main (Catch2 v3 brings Catch2::Catch2WithMain instead).
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
