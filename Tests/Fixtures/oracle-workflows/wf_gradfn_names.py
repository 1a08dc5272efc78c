with model.trace("The Eiffel Tower is in the city of"):
    print(model.transformer.wte.output[0, 0, :3])
    print(model.transformer.wpe.output[0, 1, :3])
    print(model.transformer.ln_f.input[0, -1, :2])
    print(model.transformer.ln_f.output[0, -1, :3])
