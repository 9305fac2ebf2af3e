#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "runtime/npz.h"

namespace nabla::runtime {
namespace {

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("nabla_npz_test_" + std::to_string(::getpid()) + "_" + name))
      .string();
}

Array sample(DType t) {
  Array a = Array::zeros({2, 3}, t);
  for (size_t i = 0; i < 6; ++i) {
    if (t == DType::F32) a.f32[i] = 0.5f * static_cast<float>(i) - 1;
    else a.f64[i] = 0.1 * static_cast<double>(i) - 1e-300;
  }
  return a;
}

TEST(Npz, WriteThenReadStoredAndCompressed) {
  for (bool compress : {false, true}) {
    const std::string path = temp_path(compress ? "c.npz" : "s.npz");
    ArrayMap in{{"W1", sample(DType::F64)}, {"b", sample(DType::F32)}, {"loss", Array::zeros({}, DType::F64)}};
    in["loss"].f64[0] = 3.25;
    write_npz(path, in, compress);
    const ArrayMap out = read_npz(path);
    ASSERT_EQ(out.size(), 3u);
    EXPECT_EQ(out.at("W1").shape, (std::vector<int64_t>{2, 3}));
    EXPECT_EQ(out.at("W1").f64, in["W1"].f64);
    EXPECT_EQ(out.at("b").dtype, DType::F32);
    EXPECT_EQ(out.at("b").f32, in["b"].f32);
    EXPECT_TRUE(out.at("loss").shape.empty());
    EXPECT_EQ(out.at("loss").f64[0], 3.25);
    std::filesystem::remove(path);
  }
}

TEST(Npz, ReadsWhatNumpyWrites) {
  const std::string dir = NABLA_SOURCE_DIR "/../shared/acceptance/models";
  if (!std::filesystem::exists(dir)) GTEST_SKIP() << "no shared acceptance corpus";
  const ArrayMap p = read_npz(dir + "/mlp_relu_softmax.params.npz");
  EXPECT_EQ(p.at("W1").shape, (std::vector<int64_t>{10, 12}));
  EXPECT_EQ(p.at("W1").dtype, DType::F64);
  // numpy.savez_compressed, float32, a 0-d array, and numpy reading ours.
  const std::string theirs = temp_path("numpy.npz"), ours = temp_path("ours.npz");
  const std::string script =
      "/usr/bin/python3 -c \"import numpy as np; np.savez_compressed('" + theirs +
      "', a=np.arange(12, dtype=np.float32).reshape(3, 4), s=np.float64(2.5))\"";
  ASSERT_EQ(std::system(script.c_str()), 0);
  const ArrayMap t = read_npz(theirs);
  EXPECT_EQ(t.at("a").shape, (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(t.at("a").f32[11], 11.0f);
  EXPECT_EQ(t.at("s").f64[0], 2.5);
  write_npz(ours, {{"a", t.at("a")}, {"s", t.at("s")}}, true);
  const std::string check = "/usr/bin/python3 -c \"import numpy as np; d = np.load('" + ours +
                            "'); assert d['a'].dtype == np.float32 and d['a'][2, 3] == 11 and "
                            "d['s'].shape == () and d['s'] == 2.5\"";
  EXPECT_EQ(std::system(check.c_str()), 0);
  std::filesystem::remove(theirs);
  std::filesystem::remove(ours);
}

TEST(Npz, ClearErrors) {
  auto message = [](const std::string& path) {
    try {
      read_npz(path);
    } catch (const NpzError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message("/nonexistent/x.npz").find("cannot open '/nonexistent/x.npz'"), std::string::npos);
  const std::string junk = temp_path("junk.npz");
  std::ofstream(junk) << "not a zip file at all";
  EXPECT_NE(message(junk).find("is not a .npz file"), std::string::npos);
  const std::string ints = temp_path("ints.npz");
  const std::string script = "/usr/bin/python3 -c \"import numpy as np; np.savez('" + ints +
                             "', n=np.arange(3), f=np.asfortranarray(np.ones((2, 2))))\"";
  ASSERT_EQ(std::system(script.c_str()), 0);
  const std::string m = message(ints);
  EXPECT_TRUE(m.find("array 'f'") != std::string::npos || m.find("array 'n'") != std::string::npos) << m;
  EXPECT_TRUE(m.find("Fortran order") != std::string::npos || m.find("dtype '<i8'") != std::string::npos) << m;
  std::filesystem::remove(junk);
  std::filesystem::remove(ints);
}

}  // namespace
}  // namespace nabla::runtime
