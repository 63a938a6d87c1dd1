"""ratecard: meter, price, bill and simulate AI products, and see their margins."""

__version__ = "0.1.0"
