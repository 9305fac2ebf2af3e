// Scalar definitions of the language's elementwise functions, in f64.
//
// These are the spec's definitions written in numerically stable form: they
// are what `const` expressions evaluate with, and the reference the compiled
// kernels are tested against. Kinks follow PyTorch: relu'(0) = 0 etc. is a
// derivative matter; the values here are continuous.
#pragma once

namespace nabla::scalar {

double sigmoid(double x);        // 1 / (1 + exp(-x)), no overflow for large |x|
double softplus(double x);       // log(1 + exp(x)), no overflow for large x
double hard_sigmoid(double x);   // max(min(0.25 x + 0.5, 1), 0)
double hard_tanh(double x);      // max(min(x, 1), -1)
double relu(double x);           // max(0, x)
double leaky_relu(double x, double gamma);  // x > 0 ? x : gamma x
double elu(double x, double gamma);         // x > 0 ? x : gamma (exp(x) - 1)
double swish(double x, double beta);        // x sigmoid(beta x)
double gelu(double x);           // 0.5 x (1 + erf(x / sqrt(2)))
double gelu_tanh(double x);      // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
double gelu_sigmoid(double x);   // x sigmoid(1.702 x)
double sign(double x);           // -1, 0 or 1 (NaN stays NaN)
double max2(double a, double b); // NaN if either is NaN
double min2(double a, double b);

}  // namespace nabla::scalar
