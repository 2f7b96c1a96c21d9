"""The core floor: what every other floor may use — errors, the logging channel, lazy modules, the results
format (`schema`) and the results folder (`store`). Nothing here loads a model."""
