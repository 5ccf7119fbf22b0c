std = "max"
files["spec"] = { std = "max+busted" }
exclude_files = { "build" }
