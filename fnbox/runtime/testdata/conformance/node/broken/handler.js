// Line 2 has a syntax error on purpose.
exports.bad = (event) => {
  return { oops: };
};
