std = "max"
files["spec"] = { std = "max+busted" }
exclude_files = { "build" }
-- busted specs among the examples (examples/testing_spec.lua)
files["examples/*_spec.lua"] = { std = "max+busted" }
